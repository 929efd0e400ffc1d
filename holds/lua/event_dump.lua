-- Read every key of one event in one atomic cut, with Redis's clock. For the
-- tests' small events only, never on a request path nor on a real event: it is
-- O(size of the event) and Redis serves nothing else meanwhile (an event with
-- 46,000 orders took 2.4 s). Audits read in chunks (holds/inspection.py).
local t = redis.call('TIME')
return {t,
  redis.call('HGETALL', K_META), redis.call('HGETALL', K_SEATS), redis.call('HGETALL', K_HOLDS),
  redis.call('ZRANGE', K_HOLDEXP, 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', K_GA_CAP), redis.call('HGETALL', K_GA_HELD),
  redis.call('HGETALL', K_GA_SOLD), redis.call('HGETALL', K_BUYERS),
  redis.call('HGETALL', K_ORDERS), redis.call('HGETALL', K_IDEM),
  redis.call('ZRANGE', K_ORDERS_Z, 0, -1), redis.call('HGETALL', K_TICKETS),
  {redis.call('GET', K_SEQ) or '0'},
  redis.call('XRANGE', K_CHANGES, '-', '+'), redis.call('XRANGE', K_LIFECYCLE, '-', '+'),
  redis.call('HGETALL', K_BOUGHT), redis.call('HGETALL', K_HOLDREQS),
  redis.call('ZRANGE', K_HOLDREQS_Z, 0, -1, 'WITHSCORES')}
