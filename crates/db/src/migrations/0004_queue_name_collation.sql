-- Queue consumers select their items by a name range ('<queue>/' up to '<queue>0'), which is
-- right only when names compare byte by byte. PostgreSQL compares TEXT by the database's
-- collation, and a locale such as en_US ignores punctuation at first, so a database created
-- with one could put items outside their queue's range. The C collation compares bytes, as
-- SQLite's default does. (PostgreSQL only: the runner skips this script on SQLite.)
ALTER TABLE queue_item ALTER COLUMN queue_name SET DATA TYPE TEXT COLLATE "C";
