//! The back end: consumes requests, produces responses.

use crate::shared::{mb, rmb, wmb};
use crate::{Pod, RingError, RingIdx, SharedIndex, Sring};

/// ring.h's `X_back_ring`: the back end's private indices over a shared
/// ring. Peer-written indices (`req_prod`, `rsp_event`) are read once per
/// use and validated before any entry is read.
#[derive(Debug)]
pub struct BackRing<'a, Req: Pod, Rsp: Pod> {
    sring: Sring<'a, Req, Rsp>,
    /// Next response slot we will fill (`rsp_prod_pvt`).
    rsp_prod_pvt: RingIdx,
    /// Next request we will consume (`req_cons`).
    req_cons: RingIdx,
    /// The `rsp_prod` we last published (ring.h re-reads the shared one).
    rsp_prod_pub: RingIdx,
    /// Last `req_prod` that passed validation.
    req_prod_seen: RingIdx,
}

impl<'a, Req: Pod, Rsp: Pod> BackRing<'a, Req, Rsp> {
    /// `BACK_RING_INIT`: attach at index 0. The front initialises the
    /// shared area; the back does not write it here.
    pub fn new(sring: Sring<'a, Req, Rsp>) -> Self {
        Self::attach(sring, 0)
    }

    /// `BACK_RING_ATTACH`: all private indices at `start`.
    pub fn attach(sring: Sring<'a, Req, Rsp>, start: RingIdx) -> Self {
        BackRing {
            sring,
            rsp_prod_pvt: start,
            req_cons: start,
            rsp_prod_pub: start,
            req_prod_seen: start,
        }
    }

    /// The shared area.
    pub fn sring(&self) -> Sring<'a, Req, Rsp> {
        self.sring
    }

    /// `RING_SIZE`.
    pub fn size(&self) -> u32 {
        self.sring.size()
    }

    /// Private response producer (`rsp_prod_pvt`).
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// Request consumer (`req_cons`).
    pub fn req_cons(&self) -> RingIdx {
        self.req_cons
    }

    /// Requests consumed and not yet answered.
    pub fn outstanding_requests(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Read and validate `req_prod`: the front cannot have more requests in
    /// the ring than there are slots not holding an unanswered request
    /// (ring.h's `RING_REQUEST_PROD_OVERFLOW`), nor take requests back.
    /// Returns the number of unconsumed requests.
    fn check_req_prod(&mut self) -> Result<u32, RingError> {
        let prod = self.sring.load(SharedIndex::ReqProd);
        let ahead = prod.wrapping_sub(self.req_cons);
        let max_ahead = self.size() - self.outstanding_requests();
        if ahead > max_ahead {
            return Err(RingError::Overrun {
                index: SharedIndex::ReqProd,
                value: prod,
                consumer: self.req_cons,
                max_ahead,
            });
        }
        if ahead < self.req_prod_seen.wrapping_sub(self.req_cons) {
            return Err(RingError::Regressed {
                index: SharedIndex::ReqProd,
                value: prod,
                previous: self.req_prod_seen,
            });
        }
        // Requests are read only after the index that covers them.
        rmb();
        self.req_prod_seen = prod;
        Ok(ahead)
    }

    /// `XEN_RING_NR_UNCONSUMED_REQUESTS`, validated (ring.h clamps a bad
    /// value; we report it).
    pub fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.check_req_prod()
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`, validated.
    pub fn has_unconsumed_requests(&mut self) -> Result<bool, RingError> {
        Ok(self.check_req_prod()? != 0)
    }

    /// Copy out the next request, if the front has published one
    /// (`RING_COPY_REQUEST(r, req_cons++)`). `req_prod` is re-read only when
    /// the requests validated last time are used up.
    pub fn consume_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.req_cons == self.req_prod_seen && self.check_req_prod()? == 0 {
            return Ok(None);
        }
        let req = self.sring.read_req(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Copy up to `out.len()` published requests into `out` (oldest first)
    /// and consume them; returns how many. Reads and validates `req_prod`
    /// once for the whole batch.
    pub fn take_requests(&mut self, out: &mut [Req]) -> Result<usize, RingError> {
        let avail = self.check_req_prod()? as usize;
        let n = avail.min(out.len());
        for slot in &mut out[..n] {
            *slot = self.sring.read_req(self.req_cons);
            self.req_cons = self.req_cons.wrapping_add(1);
        }
        Ok(n)
    }

    /// Write `rsp` into the slot of the oldest unanswered request
    /// (`RING_GET_RESPONSE(r, rsp_prod_pvt++)`); the front sees it after a
    /// push.
    pub fn produce_response(&mut self, rsp: Rsp) -> Result<(), RingError> {
        if self.outstanding_requests() == 0 {
            return Err(RingError::NoRequestOutstanding);
        }
        self.sring.write_rsp(self.rsp_prod_pvt, rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_RESPONSES`: publish produced responses, entries first.
    pub fn push_responses(&mut self) {
        wmb();
        self.sring.store(SharedIndex::RspProd, self.rsp_prod_pvt);
        self.rsp_prod_pub = self.rsp_prod_pvt;
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publish, then tell whether
    /// the front asked (via `rsp_event`) to be notified of any of the
    /// responses just published. Any `rsp_event` value is acceptable.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_prod_pub;
        let new = self.rsp_prod_pvt;
        self.push_responses();
        mb();
        let event = self.sring.load(SharedIndex::RspEvent);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: if nothing is pending, ask for a
    /// notification on the next request (`req_event = req_cons + 1`) and
    /// check again. `Ok(true)` means there is work: don't sleep.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.check_req_prod()? != 0 {
            return Ok(true);
        }
        self.sring
            .store(SharedIndex::ReqEvent, self.req_cons.wrapping_add(1));
        mb();
        Ok(self.check_req_prod()? != 0)
    }
}
