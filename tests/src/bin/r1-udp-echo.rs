//! `r1-udp-echo PORT`: answers every UDP datagram arriving on 0.0.0.0:PORT with the same bytes.
//! Test images that need a UDP server carry it (busybox has none).

use std::net::UdpSocket;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(port) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: r1-udp-echo PORT");
        return ExitCode::from(2);
    };
    let socket = match UdpSocket::bind(("0.0.0.0", port)) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("r1-udp-echo: bind {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut buf = vec![0u8; 65_535];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                let _ = socket.send_to(&buf[..len], from);
            }
            Err(e) => eprintln!("r1-udp-echo: {e}"),
        }
    }
}
