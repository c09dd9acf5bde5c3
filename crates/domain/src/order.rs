use crate::ParseError;
use serde::{Deserialize, Serialize};

/// Where an order is in its life. The only place transitions are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

/// Something that happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    /// Payment captured (webhook, or staff for the manual provider).
    Pay,
    Fulfill,
    Ship,
    Deliver,
    /// Customer or staff cancels; before payment this releases the reservation, after payment
    /// it refunds and restocks.
    Cancel,
    /// The reservation timed out before payment.
    Expire,
    /// Refunds now cover the whole captured amount.
    RefundInFull,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot {event}")]
pub struct InvalidTransition {
    pub from: &'static str,
    pub event: &'static str,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] =
        [Self::PendingPayment, Self::Paid, Self::Processing, Self::Shipped, Self::Delivered, Self::Cancelled, Self::Refunded];

    /// The state machine of API.md:
    /// `pending_payment → paid → processing → shipped → delivered`;
    /// `pending_payment → cancelled` (also on expiry); `paid | processing → cancelled`;
    /// `paid | processing | shipped | delivered → refunded`.
    pub fn apply(self, event: OrderEvent) -> Result<OrderStatus, InvalidTransition> {
        use OrderEvent as E;
        use OrderStatus as S;
        let next = match (self, event) {
            (S::PendingPayment, E::Pay) => S::Paid,
            (S::Paid, E::Fulfill) => S::Processing,
            (S::Processing, E::Ship) => S::Shipped,
            (S::Shipped, E::Deliver) => S::Delivered,
            (S::PendingPayment | S::Paid | S::Processing, E::Cancel) => S::Cancelled,
            (S::PendingPayment, E::Expire) => S::Cancelled,
            (S::Paid | S::Processing | S::Shipped | S::Delivered, E::RefundInFull) => S::Refunded,
            _ => return Err(InvalidTransition { from: self.as_str(), event: event.as_str() }),
        };
        Ok(next)
    }

    /// Money was captured and not (yet) fully returned: refunds are possible.
    pub fn is_refundable(self) -> bool {
        matches!(self, Self::Paid | Self::Processing | Self::Shipped | Self::Delivered)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Processing => "processing",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| ParseError::new("must be one of pending_payment, paid, processing, shipped, delivered, cancelled, refunded"))
    }
}

impl OrderEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pay => "be paid",
            Self::Fulfill => "be fulfilled",
            Self::Ship => "be shipped",
            Self::Deliver => "be delivered",
            Self::Cancel => "be cancelled",
            Self::Expire => "expire",
            Self::RefundInFull => "be refunded in full",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OrderEvent as E, OrderStatus as S};

    #[test]
    fn exactly_the_documented_transitions_are_allowed() {
        let events = [E::Pay, E::Fulfill, E::Ship, E::Deliver, E::Cancel, E::Expire, E::RefundInFull];
        let allowed = [
            (S::PendingPayment, E::Pay, S::Paid),
            (S::Paid, E::Fulfill, S::Processing),
            (S::Processing, E::Ship, S::Shipped),
            (S::Shipped, E::Deliver, S::Delivered),
            (S::PendingPayment, E::Cancel, S::Cancelled),
            (S::Paid, E::Cancel, S::Cancelled),
            (S::Processing, E::Cancel, S::Cancelled),
            (S::PendingPayment, E::Expire, S::Cancelled),
            (S::Paid, E::RefundInFull, S::Refunded),
            (S::Processing, E::RefundInFull, S::Refunded),
            (S::Shipped, E::RefundInFull, S::Refunded),
            (S::Delivered, E::RefundInFull, S::Refunded),
        ];
        for from in S::ALL {
            for event in events {
                let expected = allowed.iter().find(|(f, e, _)| *f == from && *e == event).map(|t| t.2);
                assert_eq!(from.apply(event).ok(), expected, "{from:?} + {event:?}");
            }
        }
    }
}
