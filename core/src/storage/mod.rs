//! Storage: the SQLite database, its schema, and the writer thread that owns it.

mod db;
pub(crate) mod schema;
pub(crate) mod store;
pub(crate) mod writer;

pub(crate) use db::DB_FILE;
