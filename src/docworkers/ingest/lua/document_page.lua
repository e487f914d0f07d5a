-- A page of documents, newest first across collections, and how many there are in all.
-- KEYS[1..] the indexes (zsets scored by creation time) of the collections to list
-- ARGV[1] offset  ARGV[2] limit
-- Returns: {total, id, id, ...}: the page's ids, newest first (equal times: larger id first)
local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local found, total = {}, 0
for i = 1, #KEYS do
  -- The page can only hold each index's first offset + limit entries.
  local ranked = redis.call('ZREVRANGE', KEYS[i], 0, offset + limit - 1, 'WITHSCORES')
  total = total + redis.call('ZCARD', KEYS[i])
  for j = 1, #ranked, 2 do
    found[#found + 1] = {ranked[j], tonumber(ranked[j + 1])}
  end
end
table.sort(found, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] > b[1]
end)
local page = {total}
for i = offset + 1, math.min(offset + limit, #found) do
  page[#page + 1] = found[i][1]
end
return page
