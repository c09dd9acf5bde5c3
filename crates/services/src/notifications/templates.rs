//! The messages, each in plain text and HTML. Everything that comes from data (titles, names,
//! addresses) is escaped in the HTML part.

use super::Email;
use crate::orders::OrderView;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// `1500 JPY`, `49.98 EUR`, `12.345 KWD`: as many decimals as the currency has minor units.
fn money(amount: i64, currency: &str) -> String {
    let digits = domain::Currency::parse(currency).map(|c| c.minor_units()).unwrap_or(2);
    if digits == 0 {
        return format!("{amount} {currency}");
    }
    let scale = 10i64.pow(digits as u32);
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}{}.{:0width$} {currency}", (amount / scale).abs(), (amount % scale).abs(), width = digits as usize)
}

fn html(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;max-width:600px\"><h1 style=\"font-size:20px\">{}</h1>{body}</body></html>",
        esc(title)
    )
}

pub fn order_confirmation(o: &OrderView) -> Email {
    let subject = format!("Order #{} confirmed", o.number);
    let mut text = format!("Thank you for your order #{}.\n\n", o.number);
    let mut rows = String::new();
    for l in &o.items {
        text.push_str(&format!("{} x {} ({})  {}\n", l.quantity, l.title, l.sku, money(l.line_total.amount, &l.line_total.currency)));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{} <small>{}</small></td><td style=\"text-align:right\">{}</td></tr>",
            l.quantity,
            esc(&l.title),
            esc(&l.sku),
            esc(&money(l.line_total.amount, &l.line_total.currency))
        ));
    }
    let totals = [("Subtotal", &o.subtotal), ("Shipping", &o.shipping_total), ("Total", &o.total)];
    for (label, m) in totals {
        text.push_str(&format!("{label}: {}\n", money(m.amount, &m.currency)));
        rows.push_str(&format!(
            "<tr><td></td><td>{label}</td><td style=\"text-align:right\">{}</td></tr>",
            esc(&money(m.amount, &m.currency))
        ));
    }
    text.push_str("\nWe will let you know when it ships.\n");
    let body = format!("<p>Thank you for your order #{}.</p><table>{rows}</table><p>We will let you know when it ships.</p>", o.number);
    Email { to: o.email.clone(), html: html(&subject, &body), subject, text }
}

pub fn shipping_notice(o: &OrderView) -> Email {
    let subject = format!("Order #{} has shipped", o.number);
    let carrier = o.carrier.clone().unwrap_or_default();
    let tracking = o.tracking_number.clone().unwrap_or_default();
    let text = format!("Your order #{} is on its way.\n\nCarrier: {carrier}\nTracking number: {tracking}\n", o.number);
    let body =
        format!("<p>Your order #{} is on its way.</p><p>Carrier: {}<br>Tracking number: {}</p>", o.number, esc(&carrier), esc(&tracking));
    Email { to: o.email.clone(), html: html(&subject, &body), subject, text }
}

pub fn password_reset(to: &str, token: &str, valid_minutes: i64) -> Email {
    let subject = "Reset your password".to_owned();
    let text = format!(
        "Someone asked to reset the password of your account.\n\nYour reset token: {token}\n\nIt is valid for {valid_minutes} minutes and can be used once. If this was not you, ignore this message.\n"
    );
    let body = format!(
        "<p>Someone asked to reset the password of your account.</p><p>Your reset token: <code>{}</code></p><p>It is valid for {valid_minutes} minutes and can be used once. If this was not you, ignore this message.</p>",
        esc(token)
    );
    Email { to: to.to_owned(), html: html(&subject, &body), subject, text }
}

pub fn back_in_stock(to: &str, product: &str, sku: &str, slug: &str) -> Email {
    let subject = format!("{product} is back in stock");
    let text = format!(
        "Good news: {product} ({sku}) is available again.\n\nProduct: /products/{slug}\n\nYou asked us to tell you once; this was it.\n"
    );
    let body = format!(
        "<p>Good news: <strong>{}</strong> ({}) is available again.</p><p>Product: /products/{}</p><p>You asked us to tell you once; this was it.</p>",
        esc(product),
        esc(sku),
        esc(slug)
    );
    Email { to: to.to_owned(), html: html(&subject, &body), subject, text }
}

pub fn low_stock(to: &str, product: &str, sku: &str, stock: i64) -> Email {
    let subject = format!("Low stock: {sku}");
    let text = format!("{product} ({sku}) is down to {stock} units.\n");
    let body = format!("<p><strong>{}</strong> ({}) is down to {stock} units.</p>", esc(product), esc(sku));
    Email { to: to.to_owned(), html: html(&subject, &body), subject, text }
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_is_escaped_in_html() {
        let e = super::back_in_stock("a@example.com", "<script>x</script>", "S&1", "s");
        assert!(e.html.contains("&lt;script&gt;") && !e.html.contains("<script>"));
        assert!(e.text.contains("<script>x</script>"), "plain text stays as is");
    }

    #[test]
    fn amounts_have_the_currencys_decimals() {
        assert_eq!(super::money(4998, "EUR"), "49.98 EUR");
        assert_eq!(super::money(1500, "JPY"), "1500 JPY");
        assert_eq!(super::money(12345, "KWD"), "12.345 KWD");
        assert_eq!(super::money(-5, "EUR"), "-0.05 EUR");
    }
}
