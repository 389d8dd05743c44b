//! Free ports on 127.0.0.1 for the control-plane programs.
//!
//! A port is found free by binding it and letting it go, so another program can take it
//! before ours binds it. That race is handled where it shows: a component whose log says
//! its address is in use is started again on fresh ports.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

/// Returns `count` distinct ports that were free on 127.0.0.1 a moment ago.
pub fn free_ports(count: usize) -> io::Result<Vec<u16>> {
    // Hold every listener until all are chosen, so the kernel never hands out one port twice.
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Whether a component's log shows it failed because a port it wanted was taken.
pub fn log_shows_port_clash(log_tail: &str) -> bool {
    log_tail.contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(5).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 5);
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        }
    }

    #[test]
    fn recognises_the_bind_errors_of_go_programs() {
        let etcd = r#"{"level":"fatal","msg":"listener failed","error":"listen tcp 127.0.0.1:2379: bind: address already in use"}"#;
        let apiserver = "E1127 failed to listen on 127.0.0.1:6443: listen tcp 127.0.0.1:6443: bind: address already in use";
        assert!(log_shows_port_clash(etcd));
        assert!(log_shows_port_clash(apiserver));
        assert!(!log_shows_port_clash("unknown flag: --bogus"));
    }
}
