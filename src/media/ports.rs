//! The RTP port pool: even ports in the configured range (RTP on the even port, RTCP on the next
//! odd one, reserved though not bound yet). Leases return their port on drop, and allocation is
//! round-robin so a port just freed is not handed out again at once (late packets of the old
//! call must not reach the new one). A std Mutex guards it: it is touched only at call set-up
//! and tear-down, never per packet, and nothing awaits while it is held.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A shared pool of even RTP ports.
#[derive(Debug, Clone)]
pub struct PortPool {
    free: Arc<Mutex<VecDeque<u16>>>,
    total: usize,
}

/// One allocated port; dropping it returns the port to the pool.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    free: Arc<Mutex<VecDeque<u16>>>,
}

impl PortLease {
    /// The RTP port (even).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut f) = self.free.lock() {
            f.push_back(self.port);
        }
    }
}

impl PortPool {
    /// A pool of the even ports in `min..=max` whose RTCP port (+1) is also in range.
    pub fn new(min: u16, max: u16) -> Self {
        let start = min + (min % 2);
        let free: VecDeque<u16> = (u32::from(start)..u32::from(max))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        PortPool {
            total: free.len(),
            free: Arc::new(Mutex::new(free)),
        }
    }

    /// Takes the least recently used free port.
    pub fn allocate(&self) -> Option<PortLease> {
        let port = self.free.lock().ok()?.pop_front()?;
        Some(PortLease {
            port,
            free: self.free.clone(),
        })
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Ports in the pool.
    pub fn capacity(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_exhaustion_and_return() {
        let pool = PortPool::new(20001, 20010);
        assert_eq!(pool.capacity(), 4, "20002, 20004, 20006, 20008");
        let leases: Vec<_> = (0..4).filter_map(|_| pool.allocate()).collect();
        assert!(leases.iter().all(|l| l.port() % 2 == 0));
        assert!(pool.allocate().is_none());
        drop(leases);
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn round_robin_and_no_leaks_over_many_calls() {
        let pool = PortPool::new(30000, 30009);
        let first = pool.allocate().map(|l| l.port());
        let second = pool.allocate().map(|l| l.port());
        assert_ne!(first, second, "a freed port is not reused at once");
        for _ in 0..1000 {
            let a = pool.allocate();
            let b = pool.allocate();
            assert!(a.is_some() && b.is_some());
        }
        assert_eq!(pool.available(), pool.capacity());
    }
}
