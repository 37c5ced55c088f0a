-- wrk script: POST /dev/derive-address with the dev JWT (see sign.lua).
local jwt = os.getenv("JWT")
local omni = os.getenv("OMNI")
wrk.method = "POST"
wrk.path = "/dev/derive-address"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. jwt
wrk.body = string.format('{"omni_account":"%s"}', omni)
done = function(summary, latency, requests)
  io.write(string.format("p50_us=%d p99_us=%d non2xx=%d\n", latency:percentile(50), latency:percentile(99), summary.errors.status))
end
