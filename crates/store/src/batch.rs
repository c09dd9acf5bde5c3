//! Inserts that go to the database together. On PostgreSQL they become the data-modifying CTEs
//! of one `WITH w0 AS (INSERT …), w1 AS (INSERT …) SELECT 1`: one round trip and one
//! bind-execute for all of them, where each insert on its own costs a round trip, and with it a
//! hand-off through the pool and a wake-up of the PostgreSQL backend. Every CTE runs to
//! completion and constraint checks (foreign keys included) see all of them, as for one
//! statement. SQLite has no writes inside WITH: there they go as one string of statements,
//! run in one hand-off to the connection's thread (each statement on its own costs one, and
//! on the one writer connection every hand-off is time other writers wait).
//!
//! Only for inserts that do not read each other's rows: the CTEs share one snapshot.

use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, QueryTrait, Statement,
    sea_query::{Alias, CommonTableExpression, Expr, InsertStatement, Query, WithClause},
};

#[derive(Debug, Default)]
pub struct Inserts {
    statements: Vec<InsertStatement>,
}

impl Inserts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an insert built with sea-orm (`Entity::insert`, `insert_many`).
    pub fn add(&mut self, insert: impl QueryTrait<QueryStatement = InsertStatement>) -> &mut Self {
        self.statements.push(insert.into_query());
        self
    }

    /// Runs every insert; the first failure (a unique violation, say) fails all of them on
    /// PostgreSQL, and on SQLite leaves the caller's transaction to roll back the ones before.
    pub async fn run<C: ConnectionTrait>(self, conn: &C) -> Result<(), DbErr> {
        let backend = conn.get_database_backend();
        if self.statements.len() < 2 {
            for insert in self.statements {
                conn.execute(&insert).await?;
            }
            return Ok(());
        }
        if backend == DbBackend::Sqlite {
            // sqlx runs a string of several statements in one call to its SQLite thread,
            // binding the positional parameters in order across them.
            let (mut sql, mut values) = (String::new(), Vec::new());
            for insert in &self.statements {
                let stmt = backend.build(insert);
                sql.push_str(&stmt.sql);
                sql.push_str(";\n");
                values.extend(stmt.values.map(|v| v.0).unwrap_or_default());
            }
            conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
            return Ok(());
        }
        let mut with = WithClause::new();
        for (i, insert) in self.statements.into_iter().enumerate() {
            with.cte(CommonTableExpression::new().query(insert).table_name(Alias::new(format!("w{i}"))).to_owned());
        }
        conn.execute(&with.query(Query::select().expr(Expr::cust("1")).to_owned())).await?;
        Ok(())
    }
}
