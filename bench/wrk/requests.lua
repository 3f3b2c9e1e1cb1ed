-- wrk script: replay a pre-generated request list, write a JSON summary.
--
-- Environment:
--   WRK_REQUESTS  file with one request per line: "PATH" (GET) or "POST<TAB>PATH<TAB>BODY"
--   WRK_OUT       where done() writes the JSON summary
--   WRK_OFFSET    0-based position to start from (the harness advances it run after run,
--                 so consecutive runs on one server never replay each other's URLs)
--
-- Non-2xx/3xx answers are counted by wrk itself (errors.status).
-- The list is walked in order from the offset (it is already in random order), so no URL
-- repeats until the list is exhausted: a response cache only helps when the list says so.
-- Run wrk with one thread (-t1): with more, threads would walk the same positions.

local requests_file = os.getenv("WRK_REQUESTS")
local out_file = os.getenv("WRK_OUT")
local offset = tonumber(os.getenv("WRK_OFFSET") or "0")

local threads = {}
local requests = {}
local position = 1

local function load(path)
  local list = {}
  for line in io.lines(path) do
    if #line > 0 then
      local method, target, body = line:match("^(%u+)\t([^\t]+)\t(.*)$")
      if method then
        local headers = { ["Content-Type"] = "application/json" }
        list[#list + 1] = wrk.format(method, target, headers, body)
      else
        list[#list + 1] = wrk.format("GET", line)
      end
    end
  end
  return list
end

function setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  requests = load(requests_file)
  position = (offset % #requests) + 1
end

function request()
  local r = requests[position]
  position = position + 1
  if position > #requests then
    position = 1
  end
  return r
end

function done(summary, latency, requests_unused)
  local e = summary.errors
  local f = assert(io.open(out_file, "w"))
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, '
      .. '"p95": %d, "p99": %d, "p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9)))
  f:close()
end
