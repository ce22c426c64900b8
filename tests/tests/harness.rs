//! The harness itself: a private containerd runs the canned images, cleans up after itself and
//! survives restarts; both brokers carry messages and come back after being stopped.
//! Needs root (containerd, mounts, cgroups).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use r1_e2e::broker::{Broker, Mosquitto, Role, Rumqttd};
use r1_e2e::containerd::PrivateContainerd;
use r1_e2e::images::{self, OciImageBuilder};
use r1_e2e::node::TOPIC_ROOT;
use r1_e2e::{free_port, procfs, wait};
use r1_protocol::Identity;
use r1_protocol::mqtt::client_options;
use r1_protocol::topics::{Channel, Topics};
use rumqttc::{Client, Event, Packet, QoS};

/// Writes `image` into `dir` and imports it into `containerd`.
fn import(containerd: &PrivateContainerd, dir: &Path, image: OciImageBuilder) -> String {
    let archive = dir.join("image.tar");
    let info = image.write_archive(&archive).expect("write archive");
    containerd.import(&archive).expect("import");
    info.reference
}

/// A fresh private containerd and a scratch dir for archives.
fn setup() -> (PrivateContainerd, tempfile::TempDir) {
    let containerd = PrivateContainerd::start().expect("start containerd");
    (containerd, tempfile::tempdir().expect("scratch dir"))
}

/// The exit code of `ctr run --rm <args>`.
fn run_exit_code(containerd: &PrivateContainerd, args: &[&str]) -> Option<i32> {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    containerd.ctr(&full).expect("ctr run").status.code()
}

/// PID of the task `id` as `ctr tasks ls` shows it, if it is RUNNING.
fn running_task_pid(containerd: &PrivateContainerd, id: &str) -> Option<u32> {
    let listing = containerd.ctr_ok(&["tasks", "ls"]).ok()?;
    listing.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [task, pid, "RUNNING"] if *task == id => pid.parse().ok(),
            _ => None,
        }
    })
}

#[test]
fn imported_images_run_and_report_their_exit_code() {
    let (containerd, scratch) = setup();
    let httpd = import(
        &containerd,
        scratch.path(),
        images::httpd("r1.test/httpd:1"),
    );
    let exits = import(
        &containerd,
        scratch.path(),
        images::exits_with("r1.test/exit3:1", 3),
    );
    let listing = containerd
        .ctr_ok(&["images", "ls", "-q"])
        .expect("images ls");
    assert!(
        listing.contains(&httpd) && listing.contains(&exits),
        "{listing}"
    );
    assert_eq!(run_exit_code(&containerd, &[&exits, "exit3"]), Some(3));
}

#[test]
fn httpd_image_serves_on_the_host_network() {
    let (containerd, scratch) = setup();
    let reference = import(
        &containerd,
        scratch.path(),
        images::httpd("r1.test/httpd:1"),
    );
    let port = free_port().to_string();
    let args = [
        "run",
        "-d",
        "--net-host",
        &reference,
        "web",
        "httpd",
        "-f",
        "-p",
        &port,
        "-h",
        "/www",
    ];
    containerd.ctr_ok(&args).expect("ctr run -d");
    let mut body = String::new();
    let served = wait::until(Duration::from_secs(10), || {
        body = http_get(&port).unwrap_or_default();
        body.contains("hello from r1")
    });
    assert!(served, "no page on port {port}; last answer: {body:?}");
}

/// The response to `GET /` on 127.0.0.1:`port`.
fn http_get(port: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn memory_hog_is_oom_killed_under_a_32_mib_limit() {
    let (containerd, scratch) = setup();
    let reference = import(
        &containerd,
        scratch.path(),
        images::memory_hog("r1.test/hog:1"),
    );
    let code = run_exit_code(
        &containerd,
        &["--memory-limit", "33554432", &reference, "hog"],
    );
    assert_eq!(code, Some(137));
}

#[test]
fn drop_leaves_no_process_mount_cgroup_or_file_behind() {
    let (containerd, scratch) = setup();
    let reference = import(
        &containerd,
        scratch.path(),
        images::sleeper("r1.test/sleeper:1"),
    );
    containerd
        .ctr_ok(&["run", "-d", &reference, "sleepy"])
        .expect("ctr run -d");
    let pid = running_task_pid(&containerd, "sleepy").expect("task running");
    let socket = containerd.socket().to_string_lossy().into_owned();
    let dir = containerd.root_dir().to_owned();
    let namespace = containerd.namespace().to_owned();
    let shim_socket = Path::new("/run/containerd/s").join(
        images::digest(format!("{socket}/{namespace}/sleepy").as_bytes())
            .trim_start_matches("sha256:"),
    );
    assert!(
        shim_socket.exists(),
        "containerd 1.6 names shim sockets sha256(address/ns/id)"
    );
    assert!(
        !procfs::mounts_under(&dir).is_empty(),
        "the container's rootfs is mounted"
    );
    assert!(cgroup_dirs(&namespace).iter().any(|path| path.exists()));

    drop(containerd);

    assert!(!procfs::is_alive(pid), "container process {pid} survived");
    let talkers: Vec<u32> = procfs::processes()
        .into_iter()
        .filter(|info| !info.is_zombie() && info.mentions(&socket))
        .map(|info| info.pid)
        .collect();
    assert!(
        talkers.is_empty(),
        "processes still mention {socket}: {talkers:?}"
    );
    assert!(procfs::mounts_under(&dir).is_empty());
    assert!(!dir.exists());
    assert!(cgroup_dirs(&namespace).iter().all(|path| !path.exists()));
    assert!(!Path::new("/run/containerd/runc").join(&namespace).exists());
    assert!(
        !shim_socket.exists(),
        "shim socket {} left behind",
        shim_socket.display()
    );
}

/// `/sys/fs/cgroup/<hierarchy>/<namespace>` for every hierarchy.
fn cgroup_dirs(namespace: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroup root")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(namespace))
        .collect()
}

#[test]
fn shutdown_reports_success() {
    let containerd = PrivateContainerd::start().expect("start");
    let dir = containerd.root_dir().to_owned();
    containerd.shutdown().expect("clean shutdown");
    assert!(!dir.exists());
}

#[test]
fn restart_keeps_a_running_container_alive() {
    let (mut containerd, scratch) = setup();
    let reference = import(
        &containerd,
        scratch.path(),
        images::sleeper("r1.test/sleeper:1"),
    );
    containerd
        .ctr_ok(&["run", "-d", &reference, "sleepy"])
        .expect("ctr run -d");
    let before = running_task_pid(&containerd, "sleepy").expect("running before");

    containerd.restart().expect("restart");

    assert_eq!(running_task_pid(&containerd, "sleepy"), Some(before));
    assert!(procfs::is_alive(before));
    // The sleeper stops promptly on SIGTERM even as PID 1.
    let started = Instant::now();
    containerd
        .ctr_ok(&["tasks", "kill", "sleepy"])
        .expect("SIGTERM");
    let stopped = wait::until(Duration::from_secs(5), || {
        running_task_pid(&containerd, "sleepy").is_none()
    });
    assert!(stopped && started.elapsed() < Duration::from_secs(5));
}

/// As a new oracle, subscribes to the oracles' observations, publishes its own and waits for
/// it to come back through `broker`.
fn roundtrip(broker: &dyn Broker) -> Result<(), String> {
    let identity = Identity::generate();
    let url = broker
        .admit(identity.address(), Role::Oracle)
        .map_err(|error| error.to_string())?;
    let client_id = format!("r1-harness-{}", free_port());
    let (options, _) = client_options(
        &url.parse().map_err(|e: url::ParseError| e.to_string())?,
        broker.ca_file().as_deref(),
        &client_id,
        &identity,
    )?;
    let (client, mut connection) = Client::new(options, 10);
    let topics = Topics::new(TOPIC_ROOT);
    let own = topics.topic(Channel::Observations, &identity.address());
    client
        .subscribe(topics.all(Channel::Observations), QoS::AtLeastOnce)
        .map_err(|error| error.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(500)) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => client
                .publish(own.clone(), QoS::AtLeastOnce, false, b"ping".to_vec())
                .map_err(|error| error.to_string())?,
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) if publish.payload == "ping" => {
                return Ok(());
            }
            Ok(Err(error)) => return Err(error.to_string()),
            _ => {}
        }
    }
    Err("no message came back within 10 s".to_owned())
}

/// Roundtrip, stop (nothing listens), start again (roundtrip works on the same port).
fn exercise(broker: &mut dyn Broker) {
    assert_eq!(broker.url(), format!("mqtt://127.0.0.1:{}", broker.port()));
    roundtrip(broker).expect("first roundtrip");
    broker.stop();
    assert!(
        !wait::tcp_accepts(broker.port()),
        "still listening after stop"
    );
    broker.start_again().expect("start again");
    roundtrip(broker).expect("roundtrip after restart");
}

#[test]
fn rumqttd_carries_messages_and_comes_back() {
    let mut broker = Rumqttd::start().expect("start rumqttd");
    exercise(&mut broker);
}

#[test]
fn mosquitto_carries_messages_and_comes_back() {
    let mut broker = Mosquitto::start().expect("start mosquitto");
    exercise(&mut broker);
}
