-- wrk script: POST the AdmissionReview in $REVIEW (a file) and report exact figures.
local path = os.getenv("REVIEW") or "review.json"
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

local non2xx = 0
function response(status, headers, body)
  if status ~= 200 then
    non2xx = non2xx + 1
  end
end

-- One machine-readable line: requests/s, p50 and p99 in microseconds, socket errors, non-200.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format("RESULT %.0f %d %d %d %d\n",
    summary.requests / seconds, latency:percentile(50), latency:percentile(99), errors, non2xx))
end
