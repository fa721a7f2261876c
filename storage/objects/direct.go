package objects

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// emptySHA256 is the payload hash of a request without a body.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// directGetter fetches objects from an S3-compatible endpoint with one
// SigV4-signed GET, signed by the SDK's own signer with the SDK's
// credentials, but without the SDK's middleware stack: at thousands of
// small objects a second that stack costs more CPU than the request
// (endpoint rules, per-call option copies, deep stacks; see
// docs/performance.md). Its answers and errors are the SDK's: a failed GET
// becomes the same *awshttp.ResponseError around a smithy.APIError, so
// classify treats both paths alike.
type directGetter struct {
	hc        aws.HTTPClient
	signer    *v4.Signer
	creds     aws.CredentialsProvider
	anonymous bool // public buckets: GETs go unsigned, as the SDK sends them
	region    string
	base      *url.URL
	pathStyle bool
}

// directAttempts is how often one Get is tried when the server throttles,
// fails with a 5xx or the network breaks: the SDK standard retryer's count.
const directAttempts = 3

func newDirectGetter(hc aws.HTTPClient, creds aws.CredentialsProvider, region, endpoint string, pathStyle bool) (*directGetter, error) {
	base, err := url.Parse(strings.TrimSuffix(endpoint, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("s3 endpoint %q: want http(s)://host[:port]", endpoint)
	}
	_, anonymous := creds.(aws.AnonymousCredentials)
	return &directGetter{hc: hc, signer: v4.NewSigner(), creds: creds, anonymous: anonymous, region: region, base: base, pathStyle: pathStyle}, nil
}

// get fetches one object, trying transient failures again (directAttempts
// in all) with jittered backoff.
func (d *directGetter) get(ctx context.Context, in getRequest) (*getResponse, error) {
	target := d.objectURL(in)
	var err error
	for attempt := range directAttempts {
		if attempt > 0 {
			backoff := time.Duration(rand.Int64N(int64(50*time.Millisecond) << attempt))
			select {
			case <-ctx.Done():
				return nil, errors.Join(err, ctx.Err())
			case <-time.After(backoff):
			}
		}
		var out *getResponse
		out, err = d.once(ctx, target)
		if err == nil || classify(err) != nil || ctx.Err() != nil {
			return out, err
		}
	}
	return nil, err
}

// objectURL addresses the object, its path escaped once as S3 signs it
// (url.Parse keeps that escaping as the request's RawPath).
func (d *directGetter) objectURL(in getRequest) string {
	u := *d.base
	if d.pathStyle {
		u.Path += "/" + in.Bucket + "/" + in.Key
	} else {
		u.Host = in.Bucket + "." + u.Host
		u.Path += "/" + in.Key
	}
	u.RawPath = httpbinding.EscapePath(u.Path, false)
	if in.VersionID != "" {
		u.RawQuery = "versionId=" + url.QueryEscape(in.VersionID)
	}
	return u.String()
}

// getRequest and getResponse are what Store.Get asks and reads of a GET,
// whichever path it takes.
type (
	getRequest struct {
		Bucket, Key, VersionID string
	}
	getResponse struct {
		Body          io.ReadCloser
		ContentLength *int64
		ETag          string
		VersionID     string
		LastModified  time.Time
	}
)

func (d *directGetter) once(ctx context.Context, target string) (*getResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	if !d.anonymous {
		creds, err := d.creds.Retrieve(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3 credentials: %w", err)
		}
		err = d.signer.SignHTTP(ctx, creds, req, emptySHA256, "s3", d.region, time.Now(), func(o *v4.SignerOptions) {
			o.DisableURIPathEscaping = true // S3 signs the path as sent, escaped once
		})
		if err != nil {
			return nil, fmt.Errorf("sign request: %w", err)
		}
	}
	res, err := d.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		return nil, s3ResponseError(res)
	}
	out := &getResponse{Body: res.Body, ETag: res.Header.Get("ETag"), VersionID: res.Header.Get("X-Amz-Version-Id")}
	if res.ContentLength >= 0 {
		out.ContentLength = aws.Int64(res.ContentLength)
	}
	if lm := res.Header.Get("Last-Modified"); lm != "" {
		out.LastModified, _ = http.ParseTime(lm)
	}
	return out, nil
}

// s3ResponseError reads S3's XML error document (at most 64 KB) into the
// error the SDK would have returned for it.
func s3ResponseError(res *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var doc struct {
		Code      string `xml:"Code"`
		Message   string `xml:"Message"`
		RequestID string `xml:"RequestId"`
	}
	_ = xml.NewDecoder(bytes.NewReader(body)).Decode(&doc)
	if doc.Code == "" {
		doc.Code = http.StatusText(res.StatusCode)
	}
	if doc.RequestID == "" {
		doc.RequestID = res.Header.Get("X-Amz-Request-Id")
	}
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: res},
			Err:      &smithy.GenericAPIError{Code: doc.Code, Message: doc.Message},
		},
		RequestID: doc.RequestID,
	}
}
