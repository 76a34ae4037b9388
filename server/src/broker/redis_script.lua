-- One publish, atomically: assign the id, append the event to the cluster-wide feed and to each
-- topic's stream, and index the topics. Every key shares the hash tag `{sse}`, so the script is
-- valid on Redis Cluster too.
--
-- KEYS[1]  {sse}:id      the last id assigned (a decimal string)
-- KEYS[2]  {sse}:feed    the cluster-wide feed every node reads with XREAD BLOCK
-- KEYS[3]  {sse}:topics  sorted set: topic name -> id of its last event (backfill finds topics)
-- KEYS[4]  {sse}:since   ids above this are all in this Redis's dataset (set by its first
--                         publish: a Redis that restarted empty vouches for nothing older)
-- KEYS[5..] {sse}:topic:NAME, one per topic, in the order of ARGV[5]'s lines
-- ARGV[1]  the newest id the publishing node knows (ids never go below it + 1)
-- ARGV[2]  events kept per topic stream (MAXLEN ~, from --history)
-- ARGV[3]  events kept in the feed (MAXLEN ~)
-- ARGV[4]  topic expiry in milliseconds (from --topic-ttl)
-- ARGV[5]  the topics, one per line
-- ARGV[6]  the event type, or '' for none
-- ARGV[7]  the data
--
-- The id is Redis TIME in microseconds, bumped to stay above the last id, above the feed's newest
-- entry and above what the node knows: strictly increasing across topics and nodes, and still
-- increasing after a Redis restart that lost the id key. Stream entry ids are `ID-0`, so a node
-- resumes the feed from the last event id it delivered.
local time = redis.call('TIME')
local id = tonumber(time[1]) * 1000000 + tonumber(time[2])
id = math.max(id, tonumber(ARGV[1]) + 1)
local last = redis.call('GET', KEYS[1])
if last then
  id = math.max(id, tonumber(last) + 1)
end
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if newest[1] then
  id = math.max(id, tonumber(string.match(newest[1][1], '^(%d+)')) + 1)
end
-- Lua numbers are doubles: exact up to 2^53, far beyond microseconds since 1970.
local text = string.format('%.0f', id)
redis.call('SET', KEYS[1], text)
redis.call('SET', KEYS[4], string.format('%.0f', id - 1), 'NX')
local entry = text .. '-0'
local fields = {'t', ARGV[5], 'd', ARGV[7]}
if ARGV[6] ~= '' then
  fields[5] = 'e'
  fields[6] = ARGV[6]
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], entry, unpack(fields))
local ttl = tonumber(ARGV[4])
local key = 5
for topic in string.gmatch(ARGV[5], '[^\n]+') do
  redis.call('XADD', KEYS[key], 'MAXLEN', '~', ARGV[2], entry, unpack(fields))
  redis.call('PEXPIRE', KEYS[key], ttl)
  redis.call('ZADD', KEYS[3], id, topic)
  key = key + 1
end
-- Topics not published to within the expiry have lost their streams: unindex them.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('(%.0f', id - ttl * 1000))
return text
