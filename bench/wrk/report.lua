-- wrk script of `make bench` (bench/e2e.py): the request comes from the
-- environment, and the summary is printed as one JSON line that e2e.py reads.
--   BENCH_METHOD     GET or POST (default GET)
--   BENCH_BODY_FILE  file sent as the body (POST)
--   BENCH_CONTENT_TYPE  its content type (default application/json; application/grpc: a framed message)
--   BENCH_HEADERS    more headers, one "name: value" per line (the companion bound's marker)
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  local content_type = os.getenv("BENCH_CONTENT_TYPE") or ""
  wrk.headers["Content-Type"] = content_type ~= "" and content_type or "application/json"
  if content_type == "application/grpc" then
    wrk.headers["TE"] = "trailers"
  end
end

for name, value in (os.getenv("BENCH_HEADERS") or ""):gmatch("([^:\n]+): ([^\n]*)") do
  wrk.headers[name] = value
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"non2xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
