-- wrk script: each request GETs a random line of the file given after `--`, and the summary is
-- printed as one JSON line (prefixed WRK_JSON) for bench/run.py.
local paths = {}

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  -- Threads start in the same second: mix in the table address so each draws its own sequence.
  math.randomseed(os.time() + tonumber(tostring(paths):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  local ms = function(p) return latency:percentile(p) / 1000.0 end
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_s":%f,"errors":%d,"non_2xx":%d,"latency_ms":{"p50":%f,"p75":%f,"p90":%f,"p95":%f,"p99":%f,"p999":%f,"max":%f}}\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout + e.status, e.status,
    ms(50), ms(75), ms(90), ms(95), ms(99), ms(99.9), latency.max / 1000.0))
end
