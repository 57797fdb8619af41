"""The SQLite file capgap keeps everything in, below every other layer: market/, alerts/ and bot/ all use it.

- ``database.connection``: open the file (private, WAL), the one write lock per connection, transactions that
  begin with the write lock (``BEGIN IMMEDIATE``), and reader connections lent per read, so a read never
  meets another thread's transaction.
- ``database.migrations``: the ordered, re-runnable steps each layer's tables are built with.
- ``database.files``: the file as an operator handles it: the running bot's lock, backup, restore.
"""
