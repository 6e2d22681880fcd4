-- wrk script: authenticated GETs (bench/http scenarios of reads).
-- Arguments: key=<API key>, path=<path>; in the path, `{i}` becomes a random number 1..n,
-- zero-padded to `width` digits (n=, width=), e.g. path=/v1/members/ref1-{i} n=1000 width=6.
local common = dofile("bench/wrk_common.lua")
setup, response, done = common.setup, common.response, common.done

function init(args)
   local a = common.init(args)
   headers = { ["Authorization"] = "Bearer " .. a.key }
   path = a.path
   n = tonumber(a.n or "1")
   format = "%0" .. (a.width or "1") .. "d"
   templated = path:find("{i}", 1, true) ~= nil
   fixed = wrk.format("GET", path, headers)
end

function request()
   counter = counter + 1
   if not templated then
      return fixed
   end
   local p = path:gsub("{i}", string.format(format, math.random(1, n)))
   return wrk.format("GET", p, headers)
end
