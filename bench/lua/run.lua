-- One wrk request is one whole run: POST the body and read the response to its end (a streamed
-- run's SSE response ends after its `[DONE]` frame; a JSON answer once it is complete), so wrk's
-- latency, from writing the request to the response's last byte, is the latency of a whole run.
--
-- Arguments, after `--` on wrk's command line (bench/wrk.py builds them):
--   body=<file>            the request body, read from a file
--   header=<Name: value>   a request header (repeatable)
--   expect=<text>          text a successful run's response contains (repeatable, in this order)
--   max_runs=<n>           stop after n responses (a fixed count rather than a duration); needs
--                          one thread (-t1), and bench/wrk.py to end wrk when it says so
-- A response that is not a 200 or lacks an expected text is a failed run. `done` prints one line,
-- `wrk-json {...}`, that bench/wrk.py reads: counts, socket errors and the latency distribution.

local expects = {}
local max_runs = nil
-- Globals, not locals: `done` reads them from each thread with thread:get().
runs_ok = 0
runs_failed = 0
first_failure = ""

local function read_file(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  return text
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  for _, arg in ipairs(args) do
    local key, value = arg:match("^([%w_]+)=(.*)$")
    if key == "body" then
      wrk.body = read_file(value)
    elseif key == "header" then
      local name, text = value:match("^([^:]+):%s*(.*)$")
      wrk.headers[name] = text
    elseif key == "expect" then
      table.insert(expects, value)
    elseif key == "max_runs" then
      max_runs = tonumber(value)
    else
      error("run.lua: unknown argument " .. arg)
    end
  end
end

local function complete(body)
  local from = 1
  for _, text in ipairs(expects) do
    local at = body:find(text, from, true)
    if at == nil then
      return false
    end
    from = at + #text
  end
  return true
end

function response(status, headers, body)
  if status == 200 and complete(body) then
    runs_ok = runs_ok + 1
  else
    runs_failed = runs_failed + 1
    if first_failure == "" then
      -- A refused request says why at its start; a run that ended badly, at its end.
      local excerpt = status == 200 and body:sub(-400) or body:sub(1, 400)
      first_failure = "HTTP " .. status .. ": " .. excerpt
    end
  end
  if max_runs ~= nil and runs_ok + runs_failed == max_runs then
    -- wrk's main thread sleeps for the whole duration whatever its threads do: say so, and
    -- bench/wrk.py interrupts that sleep (SIGINT), so the duration is that of these runs.
    wrk.thread:stop()
    io.write("wrk-stopped\n")
    io.flush()
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function json_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

function done(summary, latency, requests)
  local ok, failed, failure = 0, 0, ""
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("runs_ok")
    failed = failed + thread:get("runs_failed")
    if failure == "" then
      failure = thread:get("first_failure")
    end
  end
  local e = summary.errors
  local percentiles = {}
  local low, high = 0, 0
  if summary.requests > 0 then -- an empty distribution has no minimum to print
    low, high = latency.min, latency.max
    for _, p in ipairs({50, 90, 99, 99.9}) do
      table.insert(percentiles, string.format('"%s":%d', p, latency:percentile(p)))
    end
  end
  io.write(string.format(
    'wrk-json {"duration_us":%d,"responses":%d,"bytes":%d,"runs_ok":%d,"runs_failed":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"percentiles":{%s}},"first_failure":%s}\n',
    summary.duration, summary.requests, summary.bytes, ok, failed,
    e.connect, e.read, e.write, e.status, e.timeout,
    low, summary.requests > 0 and latency.mean or 0, high, table.concat(percentiles, ","), json_string(failure)
  ))
end
