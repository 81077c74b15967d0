-- wrk script for adebert serve and its peers: POST /v1/classify with ADE-length
-- sentences (one text per request, or ADEBERT_BENCH_INPUTS texts), bearer token from
-- ADEBERT_BENCH_TOKEN when set. Texts: one per line in ADEBERT_BENCH_TEXTS.
--   ADEBERT_BENCH_TEXTS=texts.txt wrk -t2 -c32 -d30s -s bench/serve/ade.lua http://127.0.0.1:8080
-- done() prints one JSON line (prefixed "JSON ") with throughput, latency percentiles
-- and the non-2xx count, for bench/serve/run.sh to collect.
local texts = {}
local per_request = tonumber(os.getenv("ADEBERT_BENCH_INPUTS") or "1")
local path = os.getenv("ADEBERT_BENCH_PATH") or "/v1/classify"
local token = os.getenv("ADEBERT_BENCH_TOKEN")

local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end

function init(args)
  local f = assert(io.open(os.getenv("ADEBERT_BENCH_TEXTS") or "texts.txt", "r"))
  for line in f:lines() do
    if #line > 0 then texts[#texts + 1] = json_string(line) end
  end
  f:close()
  assert(#texts > 0, "no texts")
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if token then wrk.headers["Authorization"] = "Bearer " .. token end
end

function request()
  local parts = {}
  for i = 1, per_request do parts[i] = texts[math.random(#texts)] end
  local body
  if per_request == 1 then body = '{"inputs": ' .. parts[1] .. '}'
  else body = '{"inputs": [' .. table.concat(parts, ", ") .. ']}' end
  return wrk.format(nil, path, nil, body)
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  local non2xx = (summary.errors.status or 0)
  io.write(string.format(
    'JSON {"requests": %d, "seconds": %.3f, "rps": %.2f, "texts_per_s": %.2f, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "non2xx": %d, "socket_errors": %d, "inputs_per_request": %d}\n',
    summary.requests, s, summary.requests / s, summary.requests * per_request / s,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    non2xx, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    per_request))
end
