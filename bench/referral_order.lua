-- wrk script: POST /v1/orders, a new order each time by a random buyer among n, each with a
-- two-level chain (bench/http/referral.py seeds buyer-{i} <- ref1-{i} <- ref2-{i}).
-- Arguments: key=<client key>, run=<tag unique to this wrk run>, n=<buyers>, paid_at=<RFC 3339>.
-- order_id = o<run>-<thread>-<counter>: unique per request, per thread, per run.
local common = dofile("bench/wrk_common.lua")
setup, response, done = common.setup, common.response, common.done

local body_format = '{"order_id":"o%s-%d-%d","buyer_id":"buyer-%06d","currency":"CNY","paid_at":"%s",'
   .. '"items":[{"item_id":"sku-1","category":"apparel","amount":19900,"quantity":1},'
   .. '{"item_id":"sku-2","category":"books","amount":4990,"quantity":2}]}'

function init(args)
   local a = common.init(args)
   headers = { ["Authorization"] = "Bearer " .. a.key, ["Content-Type"] = "application/json" }
   run = a.run
   n = tonumber(a.n)
   paid_at = a.paid_at
end

function request()
   counter = counter + 1
   local body = string.format(body_format, run, thread_no, counter, math.random(1, n), paid_at)
   return wrk.format("POST", "/v1/orders", headers, body)
end
