-- wrk script: POST /dev/sign-message with the dev JWT. Usage:
--   JWT=... OMNI=... wrk -t2 -c32 -d10s -s bench/sign.lua https://127.0.0.1:PORT
local jwt = os.getenv("JWT")
local omni = os.getenv("OMNI")
wrk.method = "POST"
wrk.path = "/dev/sign-message"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. jwt
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"omni_account":"%s","message_hex":"%08x"}', omni, counter)
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("p50_us=%d p99_us=%d non2xx=%d\n", latency:percentile(50), latency:percentile(99), summary.errors.status))
end
