//! The login sessions the detector has seen (from `session` records), so a rule on any record
//! can ask who logged in, through which service and from where.

use std::collections::{HashMap, VecDeque};

use sensor_proto::v1::SessionEvent;

use super::fields::SessionInfo;

/// Sessions remembered (the oldest are forgotten first).
const MAX_SESSIONS: usize = 65_536;

#[derive(Debug, Default)]
pub struct SessionCache {
    by_id: HashMap<u32, SessionInfo>,
    order: VecDeque<u32>,
}

impl SessionCache {
    pub fn observe(&mut self, s: &SessionEvent) {
        let info = SessionInfo {
            user: s.user.clone(),
            service: s.service.clone(),
            remote_address: s.remote_address.clone(),
            remote_port: s.remote_port,
            tty: s.tty.clone(),
        };
        if self.by_id.insert(s.session_id, info).is_none() {
            self.order.push_back(s.session_id);
            if self.order.len() > MAX_SESSIONS
                && let Some(old) = self.order.pop_front()
            {
                self.by_id.remove(&old);
            }
        }
    }

    pub fn get(&self, id: u32) -> Option<&SessionInfo> {
        if id == u32::MAX {
            return None;
        }
        self.by_id.get(&id)
    }
}
