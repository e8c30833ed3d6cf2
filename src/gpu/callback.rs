//! A wgpu callback (a buffer mapping) as a future.
//!
//! Natively the callback runs inside `Device::poll`, so by the time the future is awaited it
//! is already complete. In a browser there is nothing to poll: the callback runs from the
//! page's event loop, and awaiting the future is what hands control back to that loop. An
//! `mpsc` receiver would block the only thread there is.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

struct State<T> {
    value: Option<T>,
    /// The sending half was dropped without a value (wgpu dropped the callback).
    abandoned: bool,
    waker: Option<Waker>,
}

/// Resolves to the callback's argument, or `None` if the callback was dropped uncalled.
pub(crate) struct Callback<T> {
    state: Arc<Mutex<State<T>>>,
}

/// The sending half: wgpu owns it inside the callback closure.
struct Sender<T> {
    state: Arc<Mutex<State<T>>>,
    sent: bool,
}

impl<T> Sender<T> {
    fn send(mut self, value: T) {
        self.sent = true;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.value = Some(value);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.abandoned = true;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

/// A callback to hand to wgpu and the future of its argument.
pub(crate) fn callback<T: Send + 'static>() -> (impl FnOnce(T) + Send + 'static, Callback<T>) {
    let state = Arc::new(Mutex::new(State {
        value: None,
        abandoned: false,
        waker: None,
    }));
    let sender = Sender {
        state: state.clone(),
        sent: false,
    };
    (move |v| sender.send(v), Callback { state })
}

impl<T> Future for Callback<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.abandoned {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once<T>(f: &mut Callback<T>) -> Poll<Option<T>> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(f).poll(&mut cx)
    }

    #[test]
    fn pending_until_called_then_ready_with_the_value() {
        let (done, mut fut) = callback::<u32>();
        assert!(poll_once(&mut fut).is_pending());
        done(7);
        assert_eq!(poll_once(&mut fut), Poll::Ready(Some(7)));
    }

    #[test]
    fn a_callback_dropped_uncalled_resolves_to_none() {
        let (done, mut fut) = callback::<u32>();
        assert!(poll_once(&mut fut).is_pending());
        drop(done);
        assert_eq!(poll_once(&mut fut), Poll::Ready(None));
    }
}
