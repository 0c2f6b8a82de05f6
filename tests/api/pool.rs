//! The connection pool: connections the database dropped are replaced. A connection idle for
//! longer than `FRESH_FOR` is pinged before use; one that answered more recently is used as is,
//! so it can fail one request before it is replaced.

use std::time::Duration;

use diesel::prelude::*;
use wxauth::db::pool::FRESH_FOR;
use wxauth::sessions::listener::APPLICATION_NAME;

use crate::helpers::TestApp;

#[derive(QueryableByName)]
struct Killed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Ends every connection of the app's pool (not the session listener's, not the test's own).
fn drop_pool_connections(app: &TestApp) -> i64 {
    diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND application_name <> $1",
    )
    .bind::<diesel::sql_types::Text, _>(APPLICATION_NAME)
    .get_result::<Killed>(&mut app.db())
    .expect("terminate")
    .n
}

#[actix_web::test]
async fn connections_the_database_dropped_are_replaced() {
    let app = TestApp::spawn().await;
    let token = app.login_ok("alice").await;
    assert_eq!(app.get("user/index", Some(&token)).await.errno(), 0);

    // Idle past the window: every checkout pings, so no request sees a dead connection.
    assert!(drop_pool_connections(&app) >= 1);
    actix_web::rt::time::sleep(FRESH_FOR + Duration::from_millis(200)).await;
    for _ in 0..6 {
        let reply = app.get("user/index", Some(&token)).await;
        assert_eq!(reply.errno(), 0, "{}", reply.raw);
    }

    // Used a moment ago: each dead connection may fail one request (502), then is replaced.
    assert!(drop_pool_connections(&app) >= 1);
    let (mut failures, mut in_a_row) = (0, 0);
    for _ in 0..30 {
        let reply = app.get("user/index", Some(&token)).await;
        if reply.errno() == 0 {
            in_a_row += 1;
            if in_a_row == 6 {
                break;
            }
        } else {
            assert_eq!(reply.errno(), 502, "{}", reply.raw);
            failures += 1;
            in_a_row = 0;
        }
    }
    assert_eq!(in_a_row, 6, "the pool recovered");
    assert!(
        failures <= 3,
        "at most one failure per pooled connection (DB_POOL_SIZE=3): {failures}"
    );
}
