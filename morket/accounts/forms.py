"""WTForms for the account pages; services re-check every rule."""

from __future__ import annotations

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

from morket.accounts.service import EMAIL_MAX, NAME_MAX, PASSWORD_MAX, PASSWORD_MIN, name_problem, normalize_email

_NOT_CORRECT = "That password is not correct."
_PASSWORD_LENGTH = Length(
    min=PASSWORD_MIN, max=PASSWORD_MAX, message=f"Use between {PASSWORD_MIN} and {PASSWORD_MAX} characters."
)


def _valid_name(form: FlaskForm, field: StringField) -> None:
    problem = name_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


class EmailAddress:
    """Check an email address and say why one is refused: a reserved domain is not a typo."""

    def __init__(self) -> None:
        self._syntax = Email("Enter a valid email address, like name@company.com.")

    def __call__(self, form: FlaskForm, field: EmailField) -> None:
        domain = (field.data or "").rpartition("@")[2].rstrip(".").lower()
        top = domain.rpartition(".")[2]
        if "@" in (field.data or "") and top in SPECIAL_USE_DOMAIN_NAMES:
            raise ValidationError(
                f"{domain} is a reserved domain (.{top} is for testing and private networks and never receives "
                "email). Use an address at a real domain, like name@company.com."
            )
        self._syntax(form, field)


def _email_field(label: str = "Email") -> EmailField:
    return EmailField(
        label,
        validators=[
            DataRequired("Enter your email address."),
            Length(max=EMAIL_MAX, message="That email address is too long."),
            EmailAddress(),
        ],
        filters=[lambda value: normalize_email(value) if isinstance(value, str) else value],
    )


class SignupForm(FlaskForm):
    email = _email_field("Work email")
    name = StringField(
        "Your name",
        validators=[DataRequired("Enter your name."), Length(max=NAME_MAX, message="Use a shorter name."), _valid_name],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
    )
    password = PasswordField("Password", validators=[DataRequired("Choose a password."), _PASSWORD_LENGTH])
    confirm = PasswordField(
        "Confirm password",
        validators=[DataRequired("Type the password again."), EqualTo("password", "The passwords do not match.")],
    )

    def validate_password(self, field: PasswordField) -> None:
        if self.email.data and field.data and field.data.strip().lower() == self.email.data:
            raise ValidationError("Your password cannot be your email address.")


class LoginForm(FlaskForm):
    email = _email_field()
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=PASSWORD_MAX, message=_NOT_CORRECT)]
    )
    next = HiddenField()


class ForgotPasswordForm(FlaskForm):
    email = _email_field()


class ResetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired("Choose a password."), _PASSWORD_LENGTH])
    confirm = PasswordField(
        "Confirm new password",
        validators=[DataRequired("Type the password again."), EqualTo("password", "The passwords do not match.")],
    )


class ProfileForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired("Enter your name."), Length(max=NAME_MAX, message="Use a shorter name."), _valid_name],
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
    )
    save_profile = SubmitField("Save")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[DataRequired("Enter your current password."), Length(max=PASSWORD_MAX, message=_NOT_CORRECT)],
    )
    new_password = PasswordField("New password", validators=[DataRequired("Choose a password."), _PASSWORD_LENGTH])
    confirm = PasswordField(
        "Confirm new password",
        validators=[DataRequired("Type the password again."), EqualTo("new_password", "The passwords do not match.")],
    )
    change_password = SubmitField("Change password")
