-- syncworker schema, version 1.
-- Placeholders in braces are replaced by validated, backquoted table names (see tables.go).
-- Strings are VARBINARY: AMQP names and keys are byte strings, so no charset conversion or
-- collation work happens on the hot path, and invalid UTF-8 can never make an INSERT fail.

-- The transactional outbox. Services INSERT here inside their own transactions; the relay
-- reads one partition (a range of partition_hash) at a time in (partition_hash, id) order,
-- which is exactly ix_partition, publishes, and deletes rows once the broker confirmed them.
CREATE TABLE IF NOT EXISTS {outbox} (
  id              BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  partition_hash  INT UNSIGNED     NOT NULL,
  message_id      VARBINARY(255)   NOT NULL,
  exchange_name   VARBINARY(255)   NOT NULL,
  routing_key     VARBINARY(255)   NOT NULL,
  partition_key   VARBINARY(255)   NOT NULL,
  event_type      VARBINARY(255)   NOT NULL DEFAULT '',
  aggregate_type  VARBINARY(255)   NOT NULL DEFAULT '',
  content_type    VARBINARY(255)   NOT NULL DEFAULT '',
  correlation_id  VARBINARY(255)   NOT NULL DEFAULT '',
  headers         BLOB             NULL,
  payload         MEDIUMBLOB       NOT NULL,
  created_at      DATETIME(6)      NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  attempts        INT UNSIGNED     NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(6)      NULL,
  last_error      VARBINARY(1024)  NULL,
  PRIMARY KEY (id),
  KEY ix_partition (partition_hash, id)
) ENGINE=InnoDB;

-- Rows the relay gave up on after its maximum attempts, with the last error. The relay moves a
-- row here and deletes it from the outbox in one transaction; `outbox dead retry` moves it back.
CREATE TABLE IF NOT EXISTS {outbox_dead} (
  id              BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  outbox_id       BIGINT UNSIGNED  NOT NULL,
  partition_hash  INT UNSIGNED     NOT NULL,
  message_id      VARBINARY(255)   NOT NULL,
  exchange_name   VARBINARY(255)   NOT NULL,
  routing_key     VARBINARY(255)   NOT NULL,
  partition_key   VARBINARY(255)   NOT NULL,
  event_type      VARBINARY(255)   NOT NULL DEFAULT '',
  aggregate_type  VARBINARY(255)   NOT NULL DEFAULT '',
  content_type    VARBINARY(255)   NOT NULL DEFAULT '',
  correlation_id  VARBINARY(255)   NOT NULL DEFAULT '',
  headers         BLOB             NULL,
  payload         MEDIUMBLOB       NOT NULL,
  created_at      DATETIME(6)      NOT NULL,
  attempts        INT UNSIGNED     NOT NULL,
  last_error      VARBINARY(1024)  NULL,
  died_at         DATETIME(6)      NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY ix_died_at (died_at)
) ENGINE=InnoDB;

-- Partition leases shared by cooperating relays. A lease is owned until expires_at; the token
-- increases on every change of owner so a relay that slept past its lease can tell it lost it.
CREATE TABLE IF NOT EXISTS {relay_leases} (
  lease_group  VARBINARY(255)   NOT NULL,
  partition_no INT UNSIGNED     NOT NULL,
  owner        VARBINARY(255)   NOT NULL DEFAULT '',
  token        BIGINT UNSIGNED  NOT NULL DEFAULT 0,
  expires_at   DATETIME(6)      NOT NULL,
  PRIMARY KEY (lease_group, partition_no)
) ENGINE=InnoDB;

-- Live relays of a lease group, so partitions can be spread evenly across them.
CREATE TABLE IF NOT EXISTS {relay_members} (
  lease_group VARBINARY(255) NOT NULL,
  member      VARBINARY(255) NOT NULL,
  expires_at  DATETIME(6)    NOT NULL,
  PRIMARY KEY (lease_group, member)
) ENGINE=InnoDB;

-- The subscriber's inbox: one row per (consumer, message id) it applied. The row commits in the
-- same transaction as the handler's effect, which makes a redelivery harmless.
CREATE TABLE IF NOT EXISTS {inbox} (
  consumer     VARBINARY(255) NOT NULL,
  message_id   VARBINARY(255) NOT NULL,
  processed_at DATETIME(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (consumer, message_id),
  -- retention deletes one consumer's oldest rows in small batches (subscriber.CleanInbox)
  KEY ix_consumer_processed_at (consumer, processed_at)
) ENGINE=InnoDB;

-- Row-sync versions per replicated row, kept apart from the replica tables so those need no
-- extra columns. A delete keeps its row here as a tombstone so a late upsert cannot revive it.
-- table_name is the TARGET table in this database (the row's scope is where it is written,
-- whichever consumer writes it); row_key is the event's canonical key text (outbox.RowChange.KeyString).
CREATE TABLE IF NOT EXISTS {row_versions} (
  table_name VARBINARY(64)   NOT NULL,
  row_key    VARBINARY(512)  NOT NULL,
  version    BIGINT UNSIGNED NOT NULL,
  deleted    TINYINT(1)      NOT NULL DEFAULT 0,
  updated_at DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (table_name, row_key)
) ENGINE=InnoDB;
