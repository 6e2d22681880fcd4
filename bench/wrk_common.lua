-- Shared by the wrk scripts of `make bench` (bench/http/): arguments, a number per thread, status
-- counting and the one JSON line that bench/http reads back. Load it with
--   local common = dofile("bench/wrk_common.lua")   (wrk runs from the project folder)
-- and set `setup`, `init`, `response` and `done` from it; the script itself defines `request`.
-- wrk (Debian's package) runs LuaJIT: Lua 5.1.

local common = {}
local threads = {}

-- Main state: give every thread a number before its init() runs.
function common.setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

-- Thread state: `key=value` arguments (after `--` on wrk's command line) into the global `arg`.
function common.init(args)
   arg = {}
   for _, a in ipairs(args) do
      local k, v = a:match("^([^=]+)=(.*)$")
      if k then arg[k] = v end
   end
   counter = 0       -- requests sent by this thread: with thread_no and the run tag, a unique id
   non_2xx = 0
   statuses = {}
   first_non_2xx = nil
   math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919 + math.floor(os.clock() * 1e6))
   return arg
end

function common.response(status, headers, body)
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
      statuses[status] = (statuses[status] or 0) + 1
      if first_non_2xx == nil then
         first_non_2xx = tostring(status) .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

local function json_string(s)
   if s == nil then return "null" end
   s = s:gsub('[%c"\\]', function(c)
      if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. s .. '"'
end

-- Main state, at the end: one line `BENCH_RESULT {json}`. Latencies in microseconds.
function common.done(summary, latency, requests)
   local bad, first, codes = 0, nil, {}
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non_2xx") or 0)
      first = first or thread:get("first_non_2xx")
      local s = thread:get("statuses")
      if s then
         for code, n in pairs(s) do codes[code] = (codes[code] or 0) + n end
      end
   end
   local parts = {}
   for code, n in pairs(codes) do table.insert(parts, string.format('"%d":%d', code, n)) end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"non_2xx":%d,"statuses":{%s},' ..
      '"first_non_2xx":%s,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
      summary.requests, summary.duration, summary.bytes, bad, table.concat(parts, ","), json_string(first),
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
end

return common
