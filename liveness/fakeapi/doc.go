// Package fakeapi is a fake of the Face Liveness API (docs/liveness-api.md) for
// tests, benchmarks and the demo. It is a test tool: never point production
// at it.
//
// A *Server is an http.Handler; serve it with httptest.NewServer or
// http.Server. It answers POST /liveness the way the real API does:
//
//   - x-api-key other than Options.APIKey: 401 {"message":"Unauthorized"};
//     Options.Forbidden: 403 {"message":"Forbidden"} (IP not allowed).
//   - fault knobs, drawn from a seeded RNG: 500/502/503 (JSON or HTML body),
//     429 with Retry-After, slow answers (to trip client timeouts), and 200
//     answers with truncated JSON.
//   - a hidden fleet-wide limit (Options.HiddenRate): a token bucket;
//     calls beyond it get 429 at once, with no Retry-After. Options.LoadLatency
//     makes answers slower as the load nears the limit.
//   - body over Options.MaxBodyBytes: 413.
//   - body that is not a JSON object: 400 "invalid request body".
//   - faceImage missing, null or "": 400 errorCode 1016 "faceImage is required".
//   - faceImage that is not standard base64 (a "data:image/...;base64," prefix
//     is not accepted), not a JPEG/PNG/GIF, or an image under 64 px wide or
//     high: 400 errorCode 1017 "Fail to analyze face".
//   - otherwise 200 {"apiType":"id_live_face","result":{"liveness_score":S},
//     "transactionId":T}: S (0..100, two decimals) depends only on the image
//     bytes; T is a fresh 13-character base36 ID.
//
// 200, 400 and 413 answers carry a transactionId; 401, 403, 404, 405, 429
// and 5xx answers do not. Every answer is recorded in the ledger (Ledger);
// Charged marks the ones the real API would bill (200 and 400: the call
// reached analysis). A call whose client went away while it was delayed is
// still answered and recorded, as the real API would still bill it. Other
// paths get 404 and other methods 405.
//
// Only the fake has a control surface, for tests in another process:
//
//	GET  /_fake/ledger   JSON array of Call
//	GET  /_fake/stats    JSON Stats
//	GET  /_fake/options  JSON Options (apiKey left out)
//	POST /_fake/options  JSON Options; fields present replace the current ones
//	                     (e.g. {"hiddenRate":75} changes the hidden limit)
//	POST /_fake/reset    clear ledger and stats
//
// Durations in the JSON form of Options are strings ("250ms") or integer
// nanoseconds. The control surface needs no key.
package fakeapi
