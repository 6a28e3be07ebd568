"""The application code under test: it sends mail the way Django apps do."""
from django.core.mail import EmailMultiAlternatives

import scalr_email


def confirm_order(customer, order_id, receipt_pdf):
    msg = EmailMultiAlternatives(
        f"Order {order_id} confirmed", f"Thanks! Order {order_id} is on its way.\n",
        "Shop <orders@shop.test>", [customer], bcc=["audit@shop.test"],
        headers={"X-Order": str(order_id)})
    msg.attach_alternative(f"<p>Thanks! Order <b>{order_id}</b> is on its way.</p>", "text/html")
    msg.attach(f"receipt-{order_id}.pdf", receipt_pdf, "application/pdf")
    return msg.send()


def ping(to):
    """Plain scalr_email.send(), configured by SMTP_*."""
    return scalr_email.send(to=to, subject="ping", body="pong")
