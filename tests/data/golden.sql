-- The statements behind tests/data/*-golden.binlog (scripts/make-golden runs them on fresh
-- MariaDB 10.11 and MySQL 9.7 servers and keeps the binlog). tests/golden_own.rs decodes the
-- files with no server and checks the values below.
SET SESSION time_zone = '+00:00';
SET SESSION sql_mode = '';
CREATE DATABASE golden;
CREATE TABLE golden.t (
  id INT PRIMARY KEY,
  mi MEDIUMINT,
  biu BIGINT UNSIGNED,
  dec2 DECIMAL(65,30),
  tm2 TIME(2),
  dtm6 DATETIME(6),
  ts TIMESTAMP(6) NULL,
  y YEAR,
  lat VARCHAR(20) CHARACTER SET latin1,
  bin BINARY(4),
  e ENUM('a','b','ü'),
  s SET('x','y','z'),
  j JSON,
  b13 BIT(13)
) DEFAULT CHARSET utf8mb4;
INSERT INTO golden.t VALUES
  (1, -8388608, 18446744073709551615, '-99999999999999999999999999999999999.999999999999999999999999999999',
   '-00:00:00.01', '2001-02-03 04:05:06.000007', '2038-01-19 03:14:07.999999', 0, 'café €', 'ab', 'ü', 'x,z',
   '{"k": [1, 2.5, null, "😀"]}', b'1000000000001'),
  (2, NULL, 0, 0, '838:59:59', '0000-00-00 00:00:00', NULL, 2155, '', 0x00, 'a', '', '[]', 0);
UPDATE golden.t SET mi = 5 WHERE id = 2;
DELETE FROM golden.t WHERE id = 1;
ALTER TABLE golden.t ADD COLUMN extra VARCHAR(5) DEFAULT 'new';
INSERT INTO golden.t (id) VALUES (3);
