//! Single writes (`Db::write`): on SQLite the ones queued at a moment commit in one transaction
//! on the writer lane (`store::group`); on PostgreSQL each runs at once. Either way a write has
//! committed, and is visible to every reader, when it returns, and one that fails fails alone.

use crate::support::TestApp;
use sea_orm::{ConnectionTrait, Statement};
use store::{Write, Written, is_unique_violation};

async fn rows(db: &store::Db, sql: &str) -> i64 {
    let conn = db.current();
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn concurrent_single_writes_commit_before_they_return_and_a_failure_fails_alone() {
    let app = TestApp::spawn().await;
    let db = app.state.db.clone();
    db.execute_raw("CREATE TABLE scratch_writes (id BIGINT PRIMARY KEY, note TEXT NOT NULL)").await.unwrap();
    db.execute_raw("INSERT INTO scratch_writes (id, note) VALUES (7, 'taken')").await.unwrap();
    let backend = db.primary().get_database_backend();

    // 60 writes at once: id 7 is taken, so exactly that one fails; half want their row back.
    let mut writes = tokio::task::JoinSet::new();
    for id in 0..60i64 {
        let db = db.clone();
        writes.spawn(async move {
            let sql = format!("INSERT INTO scratch_writes (id, note) VALUES ({id}, 'w{id}')");
            let write = if id % 2 == 0 {
                Write::Rows(Statement::from_string(backend, format!("{sql} RETURNING id")))
            } else {
                Write::Count(Statement::from_string(backend, sql))
            };
            let written = db.write(write).await;
            // Answered means committed: the read-only pool (SQLite) sees it already.
            let seen = rows(&db, &format!("SELECT COUNT(*) AS n FROM scratch_writes WHERE id = {id}")).await;
            (id, written, seen)
        });
    }
    while let Some(done) = writes.join_next().await {
        let (id, written, seen) = done.unwrap();
        match (id, written) {
            (7, Err(e)) => assert!(is_unique_violation(&e), "id 7: {e}"),
            (7, Ok(w)) => panic!("id 7 is taken, yet the write answered {w:?}"),
            (id, Ok(Written::Rows(r))) => {
                assert_eq!(r.len(), 1, "id {id}");
                assert_eq!(r[0].try_get::<i64>("", "id").unwrap(), id);
                assert_eq!(seen, 1, "id {id} answered before it was visible");
            }
            (id, Ok(Written::Count(n))) => {
                assert_eq!(n, 1, "id {id}");
                assert_eq!(seen, 1, "id {id} answered before it was visible");
            }
            (id, Err(e)) => panic!("id {id} failed beside the one that should: {e}"),
        }
    }
    assert_eq!(rows(&db, "SELECT COUNT(*) AS n FROM scratch_writes").await, 60);
    assert_eq!(rows(&db, "SELECT COUNT(*) AS n FROM scratch_writes WHERE id = 7 AND note = 'taken'").await, 1);
}

/// SQLite: work that holds the writer runs on the lane's own thread (`store::lane`), and a
/// panic there reaches the caller; PostgreSQL runs it in place.
#[tokio::test]
async fn writer_work_runs_on_the_lane_and_its_panics_reach_the_caller() {
    let app = TestApp::spawn().await;
    let db = app.state.db.clone();
    let thread = db.writing(async { std::thread::current().name().map(str::to_owned) }).await.unwrap();
    let expected =
        if crate::support::pg_base().is_some() { std::thread::current().name().map(str::to_owned) } else { Some("valuva-writer".into()) };
    assert_eq!(thread, expected);
    let caught = tokio::spawn(async move { db.writing(async { panic!("inside the lane") }).await }).await;
    assert!(caught.unwrap_err().is_panic());
    // The lane survives a job's panic.
    assert_eq!(app.state.db.writing(async { 41 + 1 }).await.unwrap(), 42);
}
