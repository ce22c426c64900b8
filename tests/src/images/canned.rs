//! Ready-made test images: a web server, a process that exits with a chosen code, one that eats
//! memory until the OOM killer ends it, one that sleeps until told to stop, and the devnet's
//! three-tier shop.
//!
//! Busybox applets do not install signal handlers, and PID 1 ignores signals without one, so
//! every long-running image runs under `sh` with a TERM trap to stop promptly on SIGTERM.

use super::OciImageBuilder;

/// Applets every canned image carries, handy for `ctr tasks exec` while debugging.
const COMMON: &[&str] = &["sh", "cat", "echo", "env", "ls", "ps", "sleep", "wget"];

/// busybox httpd serving `/www` (its `index.html` says "hello from r1") on port `$PORT` (8080).
///
/// Run it with other arguments (e.g. `httpd -f -p 9000 -h /www`) to choose the port directly;
/// the default command stops on SIGTERM, a bare `httpd` command only on SIGKILL.
pub fn httpd(reference: &str) -> OciImageBuilder {
    OciImageBuilder::new(reference)
        .applets(COMMON)
        .applets(&["httpd"])
        .file("/www/index.html", b"hello from r1\n".to_vec(), 0o644)
        .env("PORT", "8080")
        .cmd(&[
            "sh",
            "-c",
            r#"trap "exit 0" TERM; httpd -f -p "$PORT" -h /www & wait"#,
        ])
}

/// Sleeps one second, then exits with `code`.
pub fn exits_with(reference: &str, code: u8) -> OciImageBuilder {
    OciImageBuilder::new(reference).applets(COMMON).cmd(&[
        "sh",
        "-c",
        &format!("sleep 1; exit {code}"),
    ])
}

/// Doubles a shell string forever: under a memory limit the OOM killer ends it (exit 137).
pub fn memory_hog(reference: &str) -> OciImageBuilder {
    OciImageBuilder::new(reference).applets(COMMON).cmd(&[
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ])
}

/// Sleeps forever, and exits 0 promptly on SIGTERM.
pub fn sleeper(reference: &str) -> OciImageBuilder {
    OciImageBuilder::new(reference).applets(COMMON).cmd(&[
        "sh",
        "-c",
        r#"trap "exit 0" TERM; while true; do sleep 1 & wait; done"#,
    ])
}

/// The devnet's shop (`crds/examples/shop-devnet.yaml`): busybox httpd serving `/www/$ROLE` on
/// `$PORT`. The `web` and `api` roles answer with the CGI scripts of `images/shop/`, each
/// calling the next job by name (web → `api:9000` → `stock:9100`); `stock` serves a file.
pub fn shop(reference: &str) -> OciImageBuilder {
    OciImageBuilder::new(reference)
        .applets(COMMON)
        .applets(&["httpd", "grep", "cut", "hostname"])
        .file(
            "/www/web/cgi-bin/index.cgi",
            include_str!("shop/web.cgi"),
            0o755,
        )
        .file(
            "/www/api/cgi-bin/index.cgi",
            include_str!("shop/api.cgi"),
            0o755,
        )
        .file("/srv/prices.txt", include_str!("shop/prices.txt"), 0o644)
        .file(
            "/www/stock/stock.txt",
            include_str!("shop/stock.txt"),
            0o644,
        )
        .env("ROLE", "stock")
        .env("PORT", "9100")
        .cmd(&[
            "sh",
            "-c",
            r#"trap "exit 0" TERM; httpd -f -p "$PORT" -h "/www/$ROLE" & wait"#,
        ])
}
