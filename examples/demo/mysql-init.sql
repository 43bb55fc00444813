-- Run once by the mysql image on an empty data directory (docker-compose.yml mounts it into
-- /docker-entrypoint-initdb.d): the three databases of the demo. `syncworker migrate` then
-- creates syncworker's tables in each, and `syncworker demo` its own tables.
CREATE DATABASE IF NOT EXISTS syncworker_demo_orders;
CREATE DATABASE IF NOT EXISTS syncworker_demo_replica;
CREATE DATABASE IF NOT EXISTS syncworker_demo_projection;
