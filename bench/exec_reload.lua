-- wrk script of bench/exec_reload: checks every 200 response's body against the
-- app's answer ("hello vNNNNNN\n", bench/exec_reload_app.py). wrk itself counts
-- non-2xx answers and socket errors; this adds the answers that were 200 but wrong.
-- wrk runs one Lua state per thread, so done() sums the threads' counters.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  good = 0
  bad = 0
end

function response(status, headers, body)
  if status == 200 then
    if string.match(body, "^hello v%d%d%d%d%d%d\n$") then
      good = good + 1
    else
      bad = bad + 1
    end
  end
end

function done(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do
    g = g + t:get("good")
    b = b + t:get("bad")
  end
  io.write(string.format("body check: good %d bad %d\n", g, b))
end
