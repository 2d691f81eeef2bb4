//! Real databases for the store's tests: a temporary directory for SQLite, a fresh schema of
//! the test PostgreSQL server (`TIDEWAY_TEST_POSTGRES_URL`; a test that needs it fails, never
//! skips, when it is absent).

use sqlx::AssertSqlSafe;

/// A temporary directory, removed when dropped: for the SQLite store, a key, a checkpoint file.
pub struct Dir(pub std::path::PathBuf);

impl Dir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tideway-store-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The URL of a fresh store on `backend` (for SQLite, a file in `dir`).
pub async fn store_url(backend: Backend, dir: &Dir) -> secrecy::SecretString {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.0.join("store.db").display()).into(),
        Backend::Postgres => {
            use sqlx::Connection;
            let base = std::env::var("TIDEWAY_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn =
                sqlx::PgConnection::connect(&base).await.expect("PostgreSQL is required for this test");
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut conn).await.unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20search_path%3D{schema}").into()
        }
    }
}

/// A fresh store on `backend`, with the directory it (or the test) keeps files in.
pub async fn fresh_store(backend: Backend) -> (super::Store, Dir) {
    let dir = Dir::new();
    let url = store_url(backend, &dir).await;
    let store = super::Store::connect(&url, 2, std::time::Duration::from_secs(10)).await.unwrap();
    (store, dir)
}
