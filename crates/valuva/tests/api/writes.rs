//! Single writes (`Db::write`): on SQLite the ones queued at a moment commit in one transaction
//! on the writer lane (`store::group`); on PostgreSQL each runs at once. Either way a write has
//! committed, and is visible to every reader, when it returns, and one that fails fails alone.
//! Transactions (`Db::transact`) join those groups on SQLite, each in a savepoint.

use crate::support::TestApp;
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Statement};
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

/// A transaction of `Db::transact`: inserts rows `2n` and `2n + 1`, then refuses (every tenth)
/// or panics (n = 17) after writing them; otherwise it answers which thread ran it.
fn pair<'t>(n: &'t i64, tx: &'t DatabaseTransaction) -> BoxFuture<'t, Result<Option<String>, DbErr>> {
    Box::pin(async move {
        let backend = tx.get_database_backend();
        for id in [2 * n, 2 * n + 1] {
            tx.execute_raw(Statement::from_string(backend, format!("INSERT INTO scratch_pairs (id, n) VALUES ({id}, {n})"))).await?;
        }
        match n {
            17 => panic!("transaction 17 panics after writing"),
            n if n % 10 == 3 => Err(DbErr::Custom(format!("transaction {n} refuses after writing"))),
            _ => Ok(std::thread::current().name().map(str::to_owned)),
        }
    })
}

/// On SQLite transactions join the group commit on the writer lane, each in a savepoint: one
/// that fails or panics leaves none of its rows while its neighbours (single writes among
/// them) commit, a panic reaches its caller, and each has committed when it returns. On
/// PostgreSQL each is a transaction of its own, run in place.
#[tokio::test]
async fn concurrent_transactions_commit_alone_and_a_failed_one_leaves_nothing() {
    let app = TestApp::spawn().await;
    let db = app.state.db.clone();
    db.execute_raw("CREATE TABLE scratch_pairs (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)").await.unwrap();
    let backend = db.primary().get_database_backend();
    let lane = if crate::support::pg_base().is_some() { None } else { Some("valuva-writer".to_owned()) };

    let mut work = tokio::task::JoinSet::new();
    for n in 0..40i64 {
        let db = db.clone();
        work.spawn(async move {
            let done = if n % 4 == 2 {
                // A single write between the transactions, in the same groups.
                let sql = format!("INSERT INTO scratch_pairs (id, n) VALUES ({}, {n})", 1000 + n);
                db.write(Write::Count(Statement::from_string(backend, sql))).await.map(|_| None)
            } else {
                db.transact(n, pair).await
            };
            let seen = rows(&db, &format!("SELECT COUNT(*) AS n FROM scratch_pairs WHERE n = {n}")).await;
            (n, done, seen)
        });
    }
    let mut panicked = 0;
    while let Some(joined) = work.join_next().await {
        let Ok((n, done, seen)) = joined else {
            assert!(joined.unwrap_err().is_panic());
            panicked += 1;
            continue;
        };
        match done {
            Ok(_) if n % 4 == 2 => assert_eq!(seen, 1, "write {n}"),
            Ok(thread) => {
                assert_eq!(seen, 2, "transaction {n} answered before both rows were visible");
                if lane.is_some() {
                    assert_eq!(thread, lane, "transaction {n} ran off the writer lane");
                }
            }
            Err(e) => {
                assert!(n % 10 == 3, "transaction {n} failed: {e}");
                assert!(e.to_string().contains("refuses"), "{e}");
                assert_eq!(seen, 0, "transaction {n} failed yet left rows");
            }
        }
    }
    assert_eq!(panicked, 1);
    assert_eq!(rows(&db, "SELECT COUNT(*) AS n FROM scratch_pairs WHERE n = 17").await, 0);
    // 10 writes, 4 refusals, 1 panic: 25 transactions of two rows.
    assert_eq!(rows(&db, "SELECT COUNT(*) AS n FROM scratch_pairs").await, 10 + 25 * 2);
    // The lane and its committer survive the panic.
    assert_eq!(db.transact(0i64, |_, _| Box::pin(async { Ok::<_, DbErr>(42) })).await.unwrap(), 42);
}
