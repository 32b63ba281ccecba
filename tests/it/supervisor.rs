//! The real binary's embedded PostgreSQL is supervised: killed, it comes
//! back on its own, the service answers from it again, and a SIGTERM still
//! stops everything quickly.

use crate::e2e::start;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The pid on the first line of the server's `postmaster.pid`, once one
/// runs that is not `not`.
fn postmaster_pid(pid_file: &Path, not: Option<u32>, within: Duration) -> u32 {
    let deadline = Instant::now() + within;
    loop {
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
            .filter(|pid| Some(*pid) != not && Path::new(&format!("/proc/{pid}")).exists());
        if let Some(pid) = pid {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no new server in {}",
            pid_file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_database_comes_back_and_the_service_answers_from_it_again() {
    let dir = std::env::temp_dir().join(format!("widget-data-supervised-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let service = start(&dir);
    service.wait_ready();
    let pid_file = dir.join("postgres").join("postmaster.pid");
    let killed = postmaster_pid(&pid_file, None, Duration::from_secs(5));

    let (_, health) = service.call("GET", "/health", None, None);
    assert_eq!(health["database"], "up", "{health}");
    let status = Command::new("kill")
        .args(["-9", &killed.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // /health reports the outage while it lasts (if we look in time: the
    // restart takes well under a second), and the process stays healthy.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, health) = service.call("GET", "/health", None, None);
        assert_eq!(status, 200, "{health}");
        let database = health["database"].as_str().unwrap_or_default().to_owned();
        if seen.last() != Some(&database) {
            seen.push(database.clone());
        }
        if database == "up" && seen.len() > 1 {
            break;
        }
        if database == "up" && Instant::now() > deadline - Duration::from_secs(25) {
            break; // the restart was quicker than our first look
        }
        assert!(
            Instant::now() < deadline,
            "database never up again: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        seen.iter()
            .all(|s| ["up", "down", "restarting"].contains(&s.as_str())),
        "{seen:?}"
    );
    let back = postmaster_pid(&pid_file, Some(killed), Duration::from_secs(30));
    service.wait_ready();

    let (status, body) = service.call(
        "POST",
        "/functions/v1/widget-data",
        Some(service.token("demo user")),
        Some(json!({"config": {"table": "servers", "groupBy": "status"}})),
    );
    assert_eq!(status, 200, "{body}");
    let got: Vec<(String, i64)> = body["data"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["value"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = widget_data::db::connect(&service.database_url, 1)
            .await
            .unwrap();
        let rows =
            sqlx::query_as("SELECT status, count(*) FROM servers GROUP BY status ORDER BY status")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows
    });
    assert_eq!(got, want);
    assert_eq!(got.len(), 4, "the seeded statuses, still there");

    let asked = Instant::now();
    service.terminate();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "SIGTERM took {:?}",
        asked.elapsed()
    );
    assert!(
        !Path::new(&format!("/proc/{back}")).exists(),
        "the restarted server outlived the service"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
