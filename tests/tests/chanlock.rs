//! A deadlock through a channel and a mutex (`tests/fixtures/chanlock`): the
//! client holds the mutex and waits for a value only the server has ever sent;
//! the server waits for the mutex to make it. Found as one `deadlock` with both
//! links named: the mutex with the line the client took it at, the channel with
//! its only server. On the oldest and the newest Go, with and without inlining.
use std::collections::BTreeSet;
use tracer_tests::*;

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex address")
}

fn deadlock_found(go: Go, flags: &[&str]) {
    let bin = build_fixture("chanlock", go, flags);
    let (code, out, err) = run_locks_mode(&bin, &["-exit-after", "1500ms"]);
    let ctx = format!("{go:?} {flags:?}: {err}\n{out}");
    assert_eq!(code, 1, "--fail-on lock must fail: {ctx}");
    let rec = program_records(&out)
        .into_iter()
        .find(|r| r.kind == "chanlock")
        .unwrap_or_else(|| panic!("no chanlock line: {ctx}"));
    let (client, server) = (rec.u64("client"), rec.u64("server"));
    let (chan, mutex) = (hex(rec.get("chan")), hex(rec.get("mutex")));
    let deadlocks: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|v| v["kind"] == "lock" && v["rule"] == "deadlock")
        .collect();
    assert_eq!(deadlocks.len(), 1, "{ctx}");
    let links = deadlocks[0]["links"].as_array().expect("links");
    let goids: BTreeSet<u64> = links.iter().filter_map(|l| l["goid"].as_u64()).collect();
    assert_eq!(goids, BTreeSet::from([client, server]), "{ctx}");
    let link = |goid: u64| {
        links
            .iter()
            .find(|l| l["goid"].as_u64() == Some(goid))
            .expect("link")
    };
    let s = link(server);
    assert_eq!(s["wait_reason"], "sync.Mutex.Lock", "{ctx}");
    assert_eq!(s["lock"].as_u64(), Some(mutex), "{ctx}");
    assert_eq!(s["holder"].as_u64(), Some(client), "{ctx}");
    assert_eq!(s["held_at"]["function"], "main.client", "{ctx}");
    let c = link(client);
    assert_eq!(c["wait_reason"], "chan receive", "{ctx}");
    assert_eq!(c["lock"].as_u64(), Some(chan), "{ctx}");
    assert_eq!(c["holder"].as_u64(), Some(server), "{ctx}");
}

#[test]
fn channel_and_mutex_deadlock_default_go() {
    deadlock_found(Go::Default, &[]);
}

#[test]
fn channel_and_mutex_deadlock_oldest_go() {
    deadlock_found(Go::Oldest, &[]);
}

#[test]
fn channel_and_mutex_deadlock_newest_go_without_inlining() {
    deadlock_found(Go::Newest, &["-gcflags=all=-l"]);
}

#[test]
fn channel_and_mutex_deadlock_oldest_go_without_inlining() {
    deadlock_found(Go::Oldest, &["-gcflags=all=-l"]);
}

#[test]
fn channel_and_mutex_deadlock_newest_go() {
    deadlock_found(Go::Newest, &[]);
}
