//! Decoder stage and schema cache: turns row events into typed row changes using the table's shape
//! as of that event (TABLE_MAP with binlog_row_metadata=FULL, plus information_schema for what the
//! binlog lacks), with a column plan prepared once per TABLE_MAP.
//!
//! Not built yet: issue #3 (binlog reader and row decoder).
