-- syncworker schema, version 2: the relay process (instance) behind a member id.
-- Two relays started with one member id (a templated id in a deployment with several replicas)
-- used to heartbeat one membership row and renew each other's leases, so both published the
-- same rows. Every relay process now has a random instance id: the membership row and each lease
-- record it, a heartbeat takes a member row only if it is its own instance's or has expired, and
-- a relay renews and releases only the leases of its own instance.
--
-- The columns default to '', so relays from before this version keep working during a rolling
-- upgrade (they never name an instance). Each ALTER runs only if its column is missing, so the
-- migration can run again after it was interrupted between its statements (MySQL has no
-- ADD COLUMN IF NOT EXISTS; MariaDB has, but this form serves both).

SET @syncworker_ddl = IF(EXISTS(SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{relay_members:name}' AND COLUMN_NAME = 'instance'),
  'DO 0',
  'ALTER TABLE {relay_members} ADD COLUMN instance VARBINARY(64) NOT NULL DEFAULT ''''');
PREPARE syncworker_ddl FROM @syncworker_ddl;
EXECUTE syncworker_ddl;
DEALLOCATE PREPARE syncworker_ddl;

SET @syncworker_ddl = IF(EXISTS(SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{relay_leases:name}' AND COLUMN_NAME = 'instance'),
  'DO 0',
  'ALTER TABLE {relay_leases} ADD COLUMN instance VARBINARY(64) NOT NULL DEFAULT ''''');
PREPARE syncworker_ddl FROM @syncworker_ddl;
EXECUTE syncworker_ddl;
DEALLOCATE PREPARE syncworker_ddl;
