package notify

import (
	"fmt"
	"net/url"
	"strings"

	"reverify"
	"reverify/storage/postgres"
)

// ParseHook reads a webhook as given on the command line: URL (reverify's
// signed JSON document), json:URL, or slack:URL (a Slack incoming
// webhook; a URL on hooks.slack.com is one without the prefix). The URL
// must be http or https. Errors never repeat the URL: it is a secret.
func ParseHook(spec string) (postgres.Webhook, error) {
	spec = strings.TrimSpace(spec)
	format := reverify.WebhookFormat("")
	for _, f := range reverify.WebhookFormats() {
		if rest, ok := strings.CutPrefix(spec, string(f)+":"); ok && !strings.HasPrefix(rest, "//") {
			format, spec = f, rest
			break
		}
	}
	u, err := url.Parse(spec)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return postgres.Webhook{}, fmt.Errorf("invalid webhook %s: want [json:|slack:]http(s)://host/path", Redact(spec))
	}
	if format == "" {
		format = reverify.WebhookJSON
		if strings.EqualFold(u.Hostname(), "hooks.slack.com") {
			format = reverify.WebhookSlack
		}
	}
	return postgres.Webhook{URL: u.String(), Format: format}, nil
}

// Redact shows a webhook as its format and scheme://host only: the path
// and query of a webhook URL (Slack's, say) are its secret.
func Redact(spec string) string {
	prefix := ""
	for _, f := range reverify.WebhookFormats() {
		if rest, ok := strings.CutPrefix(spec, string(f)+":"); ok && !strings.HasPrefix(rest, "//") {
			prefix, spec = string(f)+":", rest
			break
		}
	}
	u, err := url.Parse(strings.TrimSpace(spec))
	if err != nil || u.Host == "" {
		return prefix + "(webhook)"
	}
	s := prefix + u.Scheme + "://" + u.Host
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		s += "/…"
	}
	return s
}
