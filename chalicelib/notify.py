"""Outbound notices: email through SES and budget alerts through SNS."""
from __future__ import annotations

from typing import Any, Dict, Iterable

from chalicelib.aws import client
from chalicelib.settings import get_settings

MAX_SUBJECT = 99  # SNS: "less than 100 characters long", ASCII, no line breaks or control characters


class Notifier:
    def __init__(self, ses: Any = None, sns: Any = None) -> None:
        self._ses = ses
        self._sns = sns

    @property
    def ses(self) -> Any:
        return self._ses or client("ses")

    @property
    def sns(self) -> Any:
        return self._sns or client("sns")

    def email(self, to: Iterable[str], subject: str, body: str) -> str:
        response = self.ses.send_email(
            Source=get_settings().email_sender,
            Destination={"ToAddresses": list(to)},
            Message={"Subject": {"Data": subject, "Charset": "UTF-8"},
                     "Body": {"Text": {"Data": body, "Charset": "UTF-8"}}},
        )
        return response["MessageId"]

    def publish(self, subject: str, message: str, attributes: Dict[str, str]) -> str:
        if not (len(subject) <= MAX_SUBJECT and subject.isascii() and subject.isprintable()):
            # Real SNS rejects such a subject (moto does not): fail here, where a test sees it.
            raise ValueError(f"An SNS subject is one line of printable ASCII, at most {MAX_SUBJECT} characters.")
        topic = get_settings().alert_topic_arn
        if not topic:
            raise RuntimeError("No alert topic is configured (TESSERA_ALERT_TOPIC_ARN).")
        response = self.sns.publish(
            TopicArn=topic, Subject=subject, Message=message,
            MessageAttributes={k: {"DataType": "String", "StringValue": str(v)} for k, v in attributes.items()},
        )
        return response["MessageId"]
