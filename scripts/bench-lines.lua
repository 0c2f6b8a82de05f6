-- wrk script for scripts/bench: every request uses the next line of a file, once.
--
--   wrk ... -s bench-lines.lua URL -- login FILE THREADS   POST {"code": LINE}  (login codes)
--   wrk ... -s bench-lines.lua URL -- token FILE THREADS [DONE]   GET with X-OA-Token: LINE
--   wrk ... -s bench-lines.lua URL -- cycle FILE THREADS   the same, the lines over and over
--
-- Thread i of THREADS takes the lines i, i+THREADS, ... so no line is sent twice. Answers with
-- errno 0 count as `ok`, others as `failed`.
--
-- login: a thread whose codes are used up stops and counts it in `exhausted` (the runner mints
-- more codes than it needs, so that is an error). token: once its lines are sent, a thread sends
-- `GET /bench/filler` (a 404, not counted) until every line has its answer, then stops: stopping
-- earlier would drop requests in flight, and the server drops what nobody waits for. With DONE,
-- a stopping thread creates the file DONE.<thread>, so the runner can end wrk early (wrk itself
-- runs for its whole -d however early its threads stop).

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  local file = args[2]
  local nthreads = tonumber(args[3])
  done_prefix = args[4]
  if (mode ~= "login" and mode ~= "token" and mode ~= "cycle") or file == nil or nthreads == nil then
    error("usage: -- login|token|cycle FILE THREADS")
  end
  items = {}
  local n = 0
  for line in io.lines(file) do
    if n % nthreads == id and line ~= "" then
      table.insert(items, line)
    end
    n = n + 1
  end
  if mode == "cycle" and #items == 0 then
    error("cycle: fewer lines in " .. file .. " than threads")
  end
  pos = 0
  -- wrk calls request() once in thread 0's state, right after init and before any connection,
  -- to count pipelined requests; that request is never sent. Answer it with a filler, so that
  -- no line is spent on it.
  verifying = (id == 0)
  ok = 0
  failed = 0
  exhausted = 0
end

function request()
  if verifying then
    verifying = false
    return wrk.format("GET", "/bench/filler")
  end
  pos = pos + 1
  if mode == "cycle" then
    return wrk.format("GET", nil, { ["X-OA-Token"] = items[1 + (pos - 1) % #items] }, nil)
  end
  local item = items[pos]
  if item == nil then
    if mode == "token" then
      return wrk.format("GET", "/bench/filler")
    end
    exhausted = 1
    wrk.thread:stop()
    item = items[#items] or ""
  end
  if mode == "login" then
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
      '{"code":"' .. item .. '"}')
  end
  return wrk.format("GET", nil, { ["X-OA-Token"] = item }, nil)
end

function response(status, headers, body)
  if status == 404 then
    return -- a filler
  end
  if status == 200 and string.find(body, '"errno":0,', 1, true) then
    ok = ok + 1
  else
    failed = failed + 1
  end
  if mode == "token" and ok + failed >= #items and not finished then
    finished = true
    if done_prefix then
      local f = io.open(done_prefix .. "." .. id, "w")
      if f then f:close() end
    end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total_ok, total_failed, total_exhausted = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_failed = total_failed + thread:get("failed")
    total_exhausted = total_exhausted + thread:get("exhausted")
  end
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d ok=%d failed=%d exhausted=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout,
    total_ok, total_failed, total_exhausted))
end
