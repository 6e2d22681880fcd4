-- wrk script: authenticated POSTs of a JSON body, a new business id in every request (bench/http
-- scenarios of writes: bench/http/loyalty.py).
-- Arguments: key=<API key>, path=<path>, body=<JSON>, run=<tag unique to this wrk run>, n=, width=.
-- In path and body, `{i}` becomes a random number 1..n zero-padded to `width` digits (the member),
-- `{uid}` becomes <run>-<thread>-<counter>: unique per request, per thread, per run.
-- e.g. path=/v1/members/m-{i}/redemptions body={"redemption_id":"r{uid}","reward_code":"c"} n=1000 width=6
local common = dofile("bench/wrk_common.lua")
setup, response, done = common.setup, common.response, common.done

function init(args)
   local a = common.init(args)
   headers = { ["Authorization"] = "Bearer " .. a.key, ["Content-Type"] = "application/json" }
   path = a.path
   body = a.body or "{}"
   run = a.run or "r"
   n = tonumber(a.n or "1")
   format = "%0" .. (a.width or "1") .. "d"
end

function request()
   counter = counter + 1
   local member = string.format(format, math.random(1, n))
   local uid = run .. "-" .. thread_no .. "-" .. counter
   -- plain replacements: ids hold only [A-Za-z0-9_-], nothing gsub would read as a capture (%)
   local p = path:gsub("{i}", member)
   local b = body:gsub("{i}", member):gsub("{uid}", uid)
   return wrk.format("POST", p, headers, b)
end
