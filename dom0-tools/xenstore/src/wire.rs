//! The `xs_wire` message codec.
//!
//! Every message is a 16-byte header of four little-endian `u32`s (type,
//! request id, transaction id, payload length) followed by the payload,
//! which may not exceed [`PAYLOAD_MAX`] bytes. [`Decoder`] is incremental:
//! feed it whatever bytes arrived and it yields whole messages, buffering at
//! most one header and one maximal payload. A header announcing an oversize
//! payload is a framing error the stream cannot recover from (whatever
//! follows cannot be trusted to be in step): the decoder reports it once and
//! then discards all further input. The engine closes such a connection, as
//! Xen's stores do.

use alloc::vec::Vec;

use oxen_abi::xs_wire::{self, msg};

/// Size of the message header.
pub const HEADER_LEN: usize = xs_wire::HEADER_SIZE;
/// Largest payload allowed (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = xs_wire::PAYLOAD_MAX;

/// Message types (`enum xsd_sockmsg_type`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    Control = msg::CONTROL,
    Directory = msg::DIRECTORY,
    Read = msg::READ,
    GetPerms = msg::GET_PERMS,
    Watch = msg::WATCH,
    Unwatch = msg::UNWATCH,
    TransactionStart = msg::TRANSACTION_START,
    TransactionEnd = msg::TRANSACTION_END,
    Introduce = msg::INTRODUCE,
    Release = msg::RELEASE,
    GetDomainPath = msg::GET_DOMAIN_PATH,
    Write = msg::WRITE,
    Mkdir = msg::MKDIR,
    Rm = msg::RM,
    SetPerms = msg::SET_PERMS,
    WatchEvent = msg::WATCH_EVENT,
    Error = msg::ERROR,
    IsDomainIntroduced = msg::IS_DOMAIN_INTRODUCED,
    Resume = msg::RESUME,
    SetTarget = msg::SET_TARGET,
    ResetWatches = msg::RESET_WATCHES,
    DirectoryPart = msg::DIRECTORY_PART,
}

impl MsgType {
    /// Every known type, in numeric order.
    pub const ALL: [Self; 22] = [
        Self::Control,
        Self::Directory,
        Self::Read,
        Self::GetPerms,
        Self::Watch,
        Self::Unwatch,
        Self::TransactionStart,
        Self::TransactionEnd,
        Self::Introduce,
        Self::Release,
        Self::GetDomainPath,
        Self::Write,
        Self::Mkdir,
        Self::Rm,
        Self::SetPerms,
        Self::WatchEvent,
        Self::Error,
        Self::IsDomainIntroduced,
        Self::Resume,
        Self::SetTarget,
        Self::ResetWatches,
        Self::DirectoryPart,
    ];

    /// The type with number `raw`, if any.
    pub fn from_u32(raw: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| *t as u32 == raw)
    }
}

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Raw message type (may be unknown).
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

impl Header {
    /// Decodes a header.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Self {
            msg_type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }

    /// Encodes a header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        for (i, w) in [self.msg_type, self.req_id, self.tx_id, self.len]
            .into_iter()
            .enumerate()
        {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its header; `header.len == payload.len()`.
    pub header: Header,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// Builds a message of a known type.
    ///
    /// # Panics
    /// If `payload` is longer than `u32::MAX` (callers bound it by
    /// [`PAYLOAD_MAX`] first).
    pub fn new(msg_type: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Self {
        let len = u32::try_from(payload.len()).expect("payload length fits in u32");
        Self {
            header: Header {
                msg_type: msg_type as u32,
                req_id,
                tx_id,
                len,
            },
            payload,
        }
    }

    /// The message's bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.payload);
        out
    }

    /// The payload split into its NUL-terminated strings. Fails unless the
    /// payload is empty or ends in a NUL.
    pub fn strings(&self) -> Option<Vec<&[u8]>> {
        let body = self.payload.strip_suffix(b"\0")?;
        Some(body.split(|&b| b == 0).collect())
    }
}

/// A framing error: the header announced more than [`PAYLOAD_MAX`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized(pub Header);

/// Incremental decoder for one byte stream.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    header: Option<Header>,
    failed: bool,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the decoder holds a partial message.
    pub fn is_mid_message(&self) -> bool {
        !self.buffer.is_empty() || self.header.is_some()
    }

    /// Whether the stream hit a framing error (all later input is discarded).
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Consumes bytes from the front of `input` until one message (or a
    /// framing error) is complete; returns `None` once `input` is exhausted
    /// without completing one.
    pub fn decode(&mut self, input: &mut &[u8]) -> Option<Result<Message, Oversized>> {
        loop {
            if self.failed {
                *input = &[];
                return None;
            }
            match self.header {
                None => {
                    let need = HEADER_LEN - self.buffer.len();
                    let n = need.min(input.len());
                    self.buffer.extend_from_slice(&input[..n]);
                    *input = &input[n..];
                    if self.buffer.len() < HEADER_LEN {
                        return None;
                    }
                    let mut raw = [0; HEADER_LEN];
                    raw.copy_from_slice(&self.buffer);
                    self.buffer.clear();
                    let header = Header::decode(&raw);
                    if header.len as usize > PAYLOAD_MAX {
                        self.failed = true;
                        *input = &[];
                        return Some(Err(Oversized(header)));
                    }
                    self.header = Some(header);
                }
                Some(header) => {
                    let need = header.len as usize - self.buffer.len();
                    let n = need.min(input.len());
                    self.buffer.extend_from_slice(&input[..n]);
                    *input = &input[n..];
                    if self.buffer.len() < header.len as usize {
                        return None;
                    }
                    self.header = None;
                    let payload = core::mem::take(&mut self.buffer);
                    return Some(Ok(Message { header, payload }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn header_roundtrip() {
        let h = Header {
            msg_type: 2,
            req_id: 0xdead_beef,
            tx_id: 7,
            len: 5,
        };
        assert_eq!(Header::decode(&h.encode()), h);
        assert_eq!(&h.encode()[4..8], &[0xef, 0xbe, 0xad, 0xde]);
    }

    #[test]
    fn byte_by_byte() {
        let m = Message::new(MsgType::Write, 1, 0, b"/a\0xyz".to_vec());
        let bytes = m.to_bytes();
        let mut d = Decoder::new();
        let mut got = vec![];
        for b in &bytes {
            let mut input = core::slice::from_ref(b);
            while let Some(r) = d.decode(&mut input) {
                got.push(r.unwrap());
            }
        }
        assert_eq!(got, vec![m]);
        assert!(!d.is_mid_message());
    }

    #[test]
    fn oversize_fails_the_stream() {
        let bad = Header {
            msg_type: 2,
            req_id: 9,
            tx_id: 0,
            len: PAYLOAD_MAX as u32 + 1,
        };
        let mut bytes = bad.encode().to_vec();
        bytes.extend(vec![0u8; PAYLOAD_MAX + 1]);
        let good = Message::new(MsgType::Read, 10, 0, b"/\0".to_vec());
        bytes.extend(good.to_bytes());
        let mut d = Decoder::new();
        let mut input = &bytes[..];
        assert_eq!(d.decode(&mut input), Some(Err(Oversized(bad))));
        assert!(d.has_failed());
        assert_eq!(d.decode(&mut input), None);
        let more = good.to_bytes();
        let mut input = &more[..];
        assert_eq!(
            d.decode(&mut input),
            None,
            "nothing decodes after the error"
        );
        assert!(input.is_empty());
    }

    #[test]
    fn strings_split() {
        let m = Message::new(MsgType::Watch, 1, 0, b"/a\0tok\0".to_vec());
        assert_eq!(m.strings().unwrap(), vec![&b"/a"[..], b"tok"]);
        let m = Message::new(MsgType::Watch, 1, 0, b"/a".to_vec());
        assert!(m.strings().is_none());
        assert_eq!(MsgType::from_u32(21), Some(MsgType::ResetWatches));
        assert_eq!(MsgType::from_u32(20), None);
    }
}
