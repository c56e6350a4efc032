"""Request bodies as pydantic models: declared once, validated with (`parse`), and written into the
OpenAPI document (companion/api/openapi.py builds it from these models and the app's URL map).

Each field type says its errors in the words the API has always used ("'prompt' is required and
must be a string", "'top_p' must be between 0 and 1"), and keeps the lax forms the AI Companion
dialect accepts: a string of digits or an integral float as an integer, 1 and 0 as true and
false. The bounds come from config.py's declared limits. A field typed `loose(schema)` is only
documented: its handler reads it as it always has (e.g. "stream": only `true` streams).
"""

import re
from typing import TYPE_CHECKING, Annotated, Any, Callable, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    Strict,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    WrapValidator,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from companion.chat.groups import MAX_MEMBERS, STRATEGIES
from companion.config import CompanionLimits, GenerationSettings, InitiativeSettings, Limit, VoiceSettings, limits
from companion.errors import BadRequest
from companion.formats.dates import parse_date
from companion.voice.audio import MEDIA_TYPES

if TYPE_CHECKING:
    from typing import Annotated as Typed

    from _typeshed import DataclassInstance
else:
    class Typed:
        """Typed[T, kind, *more]: a field type built here (kind, with more metadata) that validates to T.
        pydantic reads Annotated[kind, *more], the same as the field annotated with kind; mypy, which
        cannot run the builders below, reads Annotated[T, ...]: T."""

        def __class_getitem__(cls, args: tuple[Any, ...]) -> Any:
            kind, *more = args[1:]
            return Annotated[(kind, *more)] if more else kind

MAX_TEXT = 100_000
MAX_NAME = 200
MAX_ID = 2**62
ROLES = ("system", "user", "assistant", "developer", "tool")


# field types ---------------------------------------------------------------------------------

def worded(say: Callable[[str, str, Any], str], nullable: bool = False,
           before: Callable[[str, Any], str | None] | None = None) -> WrapValidator:
    """Say the field's pydantic error as say(key, pydantic's error type, value); before(key, value)
    may find a problem first; None passes untouched when nullable (a null setting is an absent one)."""
    def check(value: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> Any:
        if value is None and nullable:
            return None
        key = str(info.field_name)
        problem = before(key, value) if before else None
        if problem:
            raise fail(problem)
        try:
            return handler(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise fail(first["msg"] if first["type"] == "worded" else say(key, first["type"], value)) from None
    return WrapValidator(check)


def fail(message: str) -> PydanticCustomError:
    """An error whose message is final (a field type's words, or a nested item's)."""
    return PydanticCustomError("worded", "{message}", {"message": message})


def text(max_length: int | None = MAX_TEXT, blank: bool = True, description: str | None = None,
         nullable: bool = False) -> Any:
    """A required string (not blank unless blank), at most max_length characters; with nullable,
    null is the same as leaving it out."""
    def blank_text(key: str, value: Any) -> str | None:
        return f"'{key}' must not be empty" if not blank and isinstance(value, str) and not value.strip() else None

    def say(key: str, kind: str, value: Any) -> str:
        if kind == "string_too_long":
            return f"'{key}' is too long (at most {max_length} characters)"
        return f"'{key}' is required and must be a string"
    return Annotated[str, Strict(), Field(max_length=max_length, min_length=0 if blank else 1, description=description),
                     worded(say, nullable, blank_text)]


def name(description: str | None = None) -> Any:
    """A required, non-empty, short name (spaces around it dropped)."""
    return Annotated[text(MAX_NAME, blank=False, description=description), AfterValidator(str.strip)]


def lax_int(value: Any) -> Any:
    """A string of digits (as the AI Companion API's docs quote them) or an integral float as an int."""
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value.strip()):   # not "²", not 5000 digits
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def integer(ge: int = 0, le: int = 1_000_000, description: str | None = None, nullable: bool = False,
            empty: bool = False) -> Any:
    """A required integer from ge to le (digit strings and integral floats accepted); with
    nullable, null is the same as leaving it out (with empty, "" too)."""
    def say(key: str, kind: str, value: Any) -> str:
        if kind in ("greater_than_equal", "less_than_equal"):
            return f"'{key}' must be between {ge} and {le}"
        return f"'{key}' is required and must be an integer"
    kind = Annotated[int, Strict(), Field(ge=ge, le=le, description=description), BeforeValidator(lax_int),
                     worded(say, nullable)]
    return Annotated[kind, BeforeValidator(lambda value: None if value == "" else value)] if empty else kind


def flag(description: str | None = None) -> Any:
    """A required true or false (1 and 0 accepted, as /api/companionData returns them)."""
    def zero_one(value: Any) -> Any:
        return bool(value) if type(value) is int and value in (0, 1) else value
    return Annotated[bool, Strict(), Field(description=description), BeforeValidator(zero_one),
                     worded(lambda key, kind, value: f"'{key}' is required and must be true or false")]


def date(description: str | None = None) -> Any:
    """An optional date (ISO 8601, seconds or milliseconds since 1970, SillyTavern's forms), as
    stored: UTC ISO 8601; None when absent or empty."""
    def parsed(value: Any, info: ValidationInfo) -> str | None:
        if value in (None, ""):
            return None
        stored = parse_date(value)
        if stored is None:
            raise fail(f"'{info.field_name}' must be a date, e.g. 2026-11-27T15:00:00+01:00")
        return stored
    return Annotated[str | None, BeforeValidator(parsed), WithJsonSchema({"type": "string", "description": description
                                                                          or "a date, e.g. 2026-11-27T15:00:00+01:00"})]


def loose(schema: dict | type, description: str | None = None) -> Any:
    """A field documented as schema (a JSON schema, or a type such as a model) and not checked
    here: its handler (or the service it calls) reads it, as it always has."""
    if isinstance(schema, dict):
        return Annotated[Any, WithJsonSchema(schema)]
    return Annotated[schema, SkipValidation, Field(description=description)]


def bounded(limit: Limit, description: str, where: str = "'{}'") -> Any:
    """A number setting of config.py within its declared bounds: JSON numbers only (an int
    setting takes an integral float too); null is the same as leaving it out."""
    kind = "an integer" if limit.kind is int else "a number"

    def say(key: str, error: str, value: Any) -> str:
        label = where.format(key)
        if error in ("greater_than_equal", "less_than_equal"):
            return limit.check(value, label) or f"{label} must be {kind}"
        return f"{label} must be {kind}"

    def integral(value: Any) -> Any:
        return int(value) if limit.kind is int and isinstance(value, float) and value.is_integer() else value
    return Annotated[limit.kind, Strict(), Field(ge=limit.ge, le=limit.le, description=description),
                     BeforeValidator(integral), worded(say, nullable=True)]


STOP_LIMIT = limits(GenerationSettings)["stop"]


def stop_list(value: Any) -> list[str] | None:
    """Stop strings: one string or a list of at most STOP_LIMIT.max_items non-empty ones (at most 200 characters)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or len(value) > (STOP_LIMIT.max_items or 0)
            or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in value)):
        raise fail(f"'stop' must be a list of at most {STOP_LIMIT.max_items} non-empty strings")
    return value


STOP = Annotated[list[str] | None, BeforeValidator(stop_list), WithJsonSchema(
    {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200},
     "maxItems": STOP_LIMIT.max_items, "description": GenerationSettings.__dataclass_fields__["stop"].metadata["help"]})]


# the common ones
Text = Typed[str, text()]
NonEmptyText = Typed[str, text(blank=False)]
Title = Typed[str, text(MAX_NAME)]
Name = Typed[str, name()]
Flag = Typed[bool, flag()]
Date = Typed[str | None, date()]
MessageId = Typed[int, integer(0, MAX_ID)]
Ref = Typed[int, integer(1, MAX_ID)]
AnyInt = Typed[Any, loose({"type": "integer"})]


# models ----------------------------------------------------------------------------------------

class Body(BaseModel):
    """A request body: unknown keys are kept (each route says whether it refuses them; most
    ignore them, as the dialects they copy do); a required key that is missing is checked as
    null, so that its error reads as a wrong value's ("'prompt' is required and must be a string")."""

    model_config = ConfigDict(extra="allow")
    unknown: ClassVar[str | None] = None       # with a message ("unknown field(s): {}"): other keys are a 400

    @model_validator(mode="before")
    @classmethod
    def _absent_is_null(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if cls.unknown:
            extra = set(data) - {f.alias or n for n, f in cls.model_fields.items()}
            if extra:
                raise fail(cls.unknown.format(", ".join(sorted(extra))))
        missing = {f.validation_alias or f.alias or n: None for n, f in cls.model_fields.items()
                   if f.is_required() and (f.validation_alias or f.alias or n) not in data}
        return {**missing, **data}

    def given(self) -> dict:
        """The declared fields the body set (not null), by name."""
        return {k: v for k, v in self.model_dump(include=set(type(self).model_fields)).items()
                if k in self.model_fields_set and v is not None}


B = TypeVar("B", bound=Body)


def parse(model: type[B], data: Any) -> B:
    """data checked against model: the model instance, or a BadRequest with the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "worded":
            raise BadRequest(first["msg"]) from None
        where = ".".join(str(part) for part in first["loc"])
        raise BadRequest(f"'{where}': {first['msg']}" if where else first["msg"]) from None


def help_of(section: "type[DataclassInstance]", key: str) -> str:
    return str(section.__dataclass_fields__[key].metadata["help"])


GENERATION_LIMITS = {key: limit for key, limit in limits(GenerationSettings).items() if limit.kind in (int, float)}
GENERATION_FIELDS: dict[str, Any] = {
    **{key: (bounded(limit, help_of(GenerationSettings, key)), None) for key, limit in GENERATION_LIMITS.items()},
    "stop": (STOP, None)}
Generation = create_model("Generation", __base__=Body, __doc__="Generation settings ([generation]'s; null: "
                          "the default)", **GENERATION_FIELDS)
def generation_of(body: Body) -> dict:
    """The generation settings a checked body set (not null), by name."""
    return {k: v for k, v in body.given().items() if k in GENERATION_FIELDS}


def checked_settings(value: Any, where: str, allow_null: bool) -> dict:
    """An object of generation settings, each checked; a null one (allowed with allow_null:
    "back to the default") is kept as None; other keys are a 400."""
    if not isinstance(value, dict):
        raise fail(f"'{where}' must be an object of generation settings, e.g. {{\"temperature\": 0.7}}")
    try:
        values = parse(Generation, value).given()
    except BadRequest as exc:
        raise fail(exc.message) from None
    removed = [k for k, v in value.items() if v is None]
    unknown = set(value) - set(values) - set(removed)
    if unknown:
        raise fail(f"unknown generation setting(s): {', '.join(sorted(unknown))}")
    if removed and not allow_null:
        raise fail(f"{where} {', '.join(sorted(removed))} must not be null")
    return {**values, **dict.fromkeys(removed)}


def generation_changes(value: dict) -> tuple[dict, list[str]]:
    """Generation settings to set (checked) and to remove (null ones); other keys are a 400."""
    try:
        settings = checked_settings(value, "generation", allow_null=True)
    except PydanticCustomError as exc:
        raise BadRequest(exc.message()) from None
    return {k: v for k, v in settings.items() if v is not None}, [k for k, v in settings.items() if v is None]


def settings_field(allow_null: bool, description: str | None = None) -> Any:
    """A preset's settings: generation settings (null for one, with allow_null: removed)."""
    def check(value: Any, info: ValidationInfo) -> dict:
        return checked_settings(value, str(info.field_name), allow_null)
    return Annotated[dict, BeforeValidator(check), WithJsonSchema(
        {**clean_schema(Generation.model_json_schema()), **({"description": description} if description else {})})]


def clean_schema(schema: Any) -> Any:
    """pydantic's JSON schema as the document writes it: no generated titles, no null defaults."""
    if isinstance(schema, dict):
        return {k: clean_schema(v) for k, v in schema.items()
                if not (k == "title" and isinstance(v, str)) and not (k == "default" and v is None)}
    if isinstance(schema, list):
        return [clean_schema(v) for v in schema]
    return schema


STREAM = loose({"type": "boolean", "description": "true: the reply as it is written (a stream)"})
SPEAK = loose({"type": "boolean", "description": "with stream: each sentence spoken as it is written (audio "
                                                "events); 501 without the speak extra"})


def with_generation(model_name: str, doc: str, before: dict, after: dict | None = None) -> type[Body]:
    """A body model: the fields before, the generation settings, then the fields after (checked in that order)."""
    return create_model(model_name, __base__=Body, __doc__=doc, **before, **GENERATION_FIELDS, **(after or {}))


# the AI Companion API ---------------------------------------------------------------------------

PromptBody = with_generation("PromptBody", "Send a message", {"prompt": (text(blank=False), ...)},
                             {"chat_id": (integer(1, MAX_ID, "the chat (default: the active one)", nullable=True),
                                          None),
                              "stream": (STREAM, None), "speak": (SPEAK, None)})
RegenerateBody = with_generation("RegenerateBody", "Generate the last reply again", {},
                                 {"stream": (STREAM, None), "speak": (SPEAK, None)})


class EditMessageBody(Body):
    new_text: NonEmptyText
    id: MessageId


class RemoveMessageBody(Body):
    id: MessageId


MEMORY_LIMITS = limits(CompanionLimits)


def memory_limit(key: str) -> Any:
    limit = MEMORY_LIMITS[key]
    return integer(int(limit.ge or 0), int(limit.le or 0), help_of(CompanionLimits, key))


def change_body(model_name: str, key: str, kind: Any) -> type[Body]:
    """The body of one /api/change/... route: {key: value}."""
    fields: dict[str, Any] = {key: (kind, ...)}
    return create_model(model_name, __base__=Body, **fields)


CHANGES: dict[str, type[Body]] = {
    "firstMessage": change_body("FirstMessageBody", "first_message", text()),
    "companionName": change_body("CompanionNameBody", "companion_name", name()),
    "companionPersona": change_body("CompanionPersonaBody", "companion_persona", text()),
    "companionExampleDialogue": change_body("ExampleDialogueBody", "example_dialogue", text()),
    "longTermMemory": change_body("LongTermMemoryBody", "limit", memory_limit("long_term_mem")),
    "shortTermMemory": change_body("ShortTermMemoryBody", "limit", memory_limit("short_term_mem")),
    "roleplay": change_body("RoleplayBody", "enable", flag()),
    "dialogue_tuning": change_body("DialogueTuningBody", "enable", flag()),
    "userName": change_body("UserNameBody", "user_name", name()),
    "userPersona": change_body("UserPersonaBody", "user_persona", text()),
}


class CompanionDataBody(Body):
    id: AnyInt = None
    name: Name
    persona: Text
    example_dialogue: Text
    first_message: Text
    long_term_mem: Typed[int, memory_limit("long_term_mem")]
    short_term_mem: Typed[int, memory_limit("short_term_mem")]
    roleplay: Flag


class UserDataBody(Body):
    id: AnyInt = None
    name: Name
    persona: Text


class TextBody(Body):
    """Text to remember (or a memory's new text)."""
    text: NonEmptyText


class CharacterJsonBody(Body):
    """The documented flat character JSON (a V2/V3 card, with "spec", is taken as it is)."""
    name: Name
    description: Text
    first_mes: Text
    mes_example: Text


class ImportedMessage(Body):
    ai: Flag
    text: NonEmptyText
    date: Date = None


MAX_IMPORT_MESSAGES = 100_000


def imported_messages(value: Any) -> list[ImportedMessage]:
    """messages: a list of {ai, text, date}, each checked ('messages[3]: ...' says which)."""
    if not isinstance(value, list):
        raise fail("'messages' is required and must be a list of {ai, text}")
    if len(value) > MAX_IMPORT_MESSAGES:
        raise fail(f"too many messages (at most {MAX_IMPORT_MESSAGES})")
    parsed = []
    for n, item in enumerate(value):
        if not isinstance(item, dict):
            raise fail(f"messages[{n}] must be an object with 'ai' and 'text'")
        try:
            parsed.append(parse(ImportedMessage, item))
        except BadRequest as exc:
            raise fail(f"messages[{n}]: {exc.message}") from None
    return parsed


class MessagesJsonBody(Body):
    messages: Annotated[list[ImportedMessage], BeforeValidator(imported_messages),
                        Field(max_length=MAX_IMPORT_MESSAGES)]


# ours ---------------------------------------------------------------------------------------------

INITIATIVE_LIMITS = limits(InitiativeSettings)
INITIATIVE_FIELDS: dict[str, Any] = {
    key: (loose({**limit.schema(), "description": help_of(InitiativeSettings, key)}), None)
    for key, limit in INITIATIVE_LIMITS.items()}
INITIATIVE_FIELDS["hours"] = (loose({"type": "string", "description": "'START-END' local hours, 0 to 24 "
                                                                     "('22-2' spans midnight)"}), None)
Initiative = create_model("Initiative", __base__=Body, __doc__="When companions write first ([initiative]; "
                          "checked by config.initiative_problem)", **INITIATIVE_FIELDS)
CompanionInitiative = create_model(
    "CompanionInitiative", __base__=Body, __doc__="A companion's writing first (null for a setting: [initiative]'s)",
    enabled=(loose({"type": "boolean"}), None),
    **{k: v for k, v in INITIATIVE_FIELDS.items() if k != "check_seconds"})


class ConfigBody(Body):
    """Model settings (a new model loads, then takes over), generation defaults and [initiative]."""
    unknown: ClassVar[str | None] = "unknown key(s): {}; use 'model', 'generation' and 'initiative'"
    model: Typed[Any, loose({"type": "object", "description": "n_ctx, n_threads, n_batch, n_gpu_layers, flash_attn, "
                                                               "use_mmap, path, chat_template"})] = None
    generation: Typed[Any, loose(Generation)] = None
    initiative: Typed[Any, loose(Initiative)] = None


VOICE_LIMITS = limits(VoiceSettings)
STRINGS = {"type": "array", "items": {"type": "string"}}
CARD_FIELDS: dict[str, Any] = {
    **{key: (loose({"type": "string"}), None) for key in (
        "description", "personality", "scenario", "first_mes", "mes_example", "creator_notes", "system_prompt",
        "post_history_instructions")},
    "alternate_greetings": (loose(STRINGS), None), "tags": (loose(STRINGS), None),
    "creator": (loose({"type": "string"}), None), "character_version": (loose({"type": "string"}), None),
    "extensions": (loose({"type": "object"}), None), "nickname": (loose({"type": "string"}), None),
    "group_only_greetings": (loose(STRINGS), None), "assets": (loose({"type": ["array", "null"]}), None),
    "creation_date": (loose({"type": ["integer", "null"]}), None),
    "modification_date": (loose({"type": ["integer", "null"]}), None),
    "source": (loose({"type": ["array", "null"]}), None)}


class CompanionVoice(Body):
    voice: Typed[Any, loose({"type": ["string", "null"], "maxLength": 200,
                             "description": "a voice of GET /api/voice (null: [voice] voice)"})] = None
    speed: Typed[Any, loose({**VOICE_LIMITS["speed"].schema(), "type": ["number", "null"]})] = None


class CompanionSettings(Body):
    """A companion's own settings (each checked when given)."""
    long_term_mem: Typed[int | None, memory_limit("long_term_mem")] = None
    short_term_mem: Typed[int | None, memory_limit("short_term_mem")] = None
    roleplay: Typed[bool | None, Flag] = None
    dialogue_tuning: Typed[bool | None, Flag] = None
    initiative: Typed[Any, loose(CompanionInitiative)] = None
    voice: Typed[Any, loose(CompanionVoice, "kept in the card as extensions.voice")] = None
    preset_id: Typed[int | None, integer(1, 2**63 - 1, nullable=True), WithJsonSchema(
        {"type": ["integer", "null"], "minimum": 1, "description": "the generation preset it uses (null: none)"})] = None


CompanionChange = create_model("CompanionChange", __base__=CompanionSettings, __doc__="A companion's card fields "
                               "and settings", name=(loose({"type": "string"}), None), **CARD_FIELDS)
CompanionNew = create_model("CompanionNew", __base__=CompanionSettings, __doc__="A new companion",
                            name=(loose({"type": "string"}), ...), **CARD_FIELDS)


class Named(Body):
    name: Name


class PersonaBody(Body):
    unknown: ClassVar[str | None] = "unknown field(s): {}"
    id: AnyInt = None
    name: Typed[str | None, Name] = None
    persona: Typed[str | None, Text] = None


class PersonaNew(PersonaBody):
    name: Name


class Ids(Body):
    """The ids a body or query string may name (each checked when given)."""
    companion_id: Typed[int | None, Ref] = None
    chat_id: Typed[int | None, Ref] = None


class ChatNew(Body):
    companion_id: Typed[int | None, integer(1, MAX_ID, "the companion (default: the active one)", nullable=True,
                                            empty=True)] = None
    title: Typed[str | None, Title] = None
    greeting_index: Typed[int | None, integer(0, 1000, "which of the card's greetings opens it")] = None


class ChatChange(Body):
    title: Typed[str | None, Title] = None
    story_so_far: Typed[bool | None, flag("the chat's newest summaries in its prompt")] = None


class SwipeChoice(Body):
    index: Typed[int, integer(0, 10_000)]


class LorebookRef(Body):
    lorebook_id: Ref


class MemoryNew(Body):
    text: NonEmptyText
    companion_id: Typed[int | None, integer(1, MAX_ID, "the companion (default: the active one)", nullable=True,
                                            empty=True)] = None
    created_at: Typed[str | None, date("when it happened (default: now)")] = None


class PresetNew(Body):
    unknown: ClassVar[str | None] = "unknown field(s): {}"
    name: Name
    settings: Typed[dict | None, settings_field(allow_null=False)] = None
    copy_of: Typed[int | None, integer(1, 2**63 - 1, "start from another preset's settings", nullable=True)] = None


class PresetChange(Body):
    unknown: ClassVar[str | None] = "unknown field(s): {}"
    id: AnyInt = None
    name: Typed[str | None, Name] = None
    settings: Typed[dict | None, settings_field(allow_null=True, description="null for a setting removes it")] = None


MEMBER = {"type": "object", "required": ["companion_id"], "properties": {
    "companion_id": {"type": "integer"}, "muted": {"type": "boolean"},
    "talkativeness": {"type": ["number", "null"], "minimum": 0, "maximum": 1}}}
MEMBERS = {"type": "array", "minItems": 2, "maxItems": MAX_MEMBERS, "items": {"oneOf": [{"type": "integer"}, MEMBER]}}


class GroupChange(Body):
    """A group's name, strategy, preset and members (checked by the group service, which knows the companions)."""
    name: Typed[Any, loose({"type": "string", "minLength": 1, "maxLength": MAX_NAME})] = None
    preset_id: Typed[Any, loose({"type": ["integer", "null"], "minimum": 1})] = None
    strategy: Typed[Any, loose({"type": "string", "enum": list(STRATEGIES)})] = None
    members: Typed[Any, loose(MEMBERS)] = None


class GroupNew(GroupChange):
    name: Typed[Any, loose({"type": "string", "minLength": 1, "maxLength": MAX_NAME})]
    members: Typed[Any, loose(MEMBERS)]


class TitleBody(Body):
    title: Typed[str | None, Title] = None


GROUP_CHAT = (integer(1, MAX_ID, "the group's chat (default: its active one)", nullable=True), None)
GroupTurnBody = with_generation(
    "GroupTurnBody", "The user writes (or, without text, lets the group go on)",
    {"text": (text(blank=False, nullable=True), None), "chat_id": GROUP_CHAT},
    {"stream": (STREAM, None), "speak": (SPEAK, None)})
GroupReplyBody = with_generation(
    "GroupReplyBody", "One member speaks now", {"companion_id": (integer(1, MAX_ID), ...), "chat_id": GROUP_CHAT},
    {"stream": (STREAM, None), "speak": (SPEAK, None)})

ENTRY_FIELDS: dict[str, Any] = {
    "keys": (loose(STRINGS), None), "secondary_keys": (loose(STRINGS), None),
    "content": (loose({"type": "string"}), None), "comment": (loose({"type": "string"}), None),
    "constant": (loose({"type": "boolean"}), None), "selective": (loose({"type": "boolean"}), None),
    "insertion_order": (loose({"type": "integer"}), None), "enabled": (loose({"type": "boolean"}), None),
    "position": (loose({"type": "string", "enum": ["before_char", "after_char"]}), None),
    "case_sensitive": (loose({"type": "boolean"}), None)}
LoreEntryBody = create_model("LoreEntryBody", __base__=Body, __doc__="A lorebook entry (checked by lorebooks.py)",
                             **ENTRY_FIELDS)
BOOK_FIELDS: dict[str, Any] = {"name": (loose({"type": "string"}), None),
                               "description": (loose({"type": "string"}), None),
                               "scan_depth": (loose({"type": "integer"}), None),
                               "token_budget": (loose({"type": "integer"}), None)}
LorebookChange = create_model("LorebookChange", __base__=Body, **BOOK_FIELDS)
LorebookNew = create_model("LorebookNew", __base__=Body, entries=(loose(list[LoreEntryBody]), None), **BOOK_FIELDS)


class SpeechBody(Body):
    """OpenAI's text to speech."""
    model: Typed[Any, loose({"type": "string"})] = None
    input: Typed[str, text(None, blank=False, description="at most [voice] max_text_chars characters (checked by "
                                                          "the handler)"),
                 Field(json_schema_extra={"maxLength": VOICE_LIMITS["max_text_chars"].le})]
    voice: Typed[Any, loose({"type": "string", "description": "a voice of GET /api/voice; others (alloy...) speak in "
                             "the default"})] = None
    response_format: Typed[Any, loose({"type": "string", "enum": list(MEDIA_TYPES)})] = None
    speed: Typed[Any, loose(VOICE_LIMITS["speed"].schema())] = None
    instructions: Typed[Any, loose({"type": "string"})] = None


class TranscriptionForm(Body):
    """OpenAI's speech to text: the recording and its form fields."""
    file: Typed[Any, loose({"type": "string", "format": "binary"})]
    model: Typed[Any, loose({"type": "string"})] = None
    language: Typed[Any, loose({"type": "string"})] = None
    response_format: Typed[Any, loose({"type": "string", "enum": ["json", "text", "verbose_json"]})] = None
    prompt: Typed[Any, loose({"type": "string"})] = None
    temperature: Typed[Any, loose({"type": "number"})] = None


class PageQuery(Body):
    """A page of a list: ?limit= and ?offset=."""
    limit: Typed[int | None, integer(1, 200, "how many (default 50)")] = None
    offset: Typed[int | None, integer(0, 10**9, "how many to skip")] = None


# the other dialects ---------------------------------------------------------------------------------

MESSAGES = loose({"type": "array", "minItems": 1, "items": {"type": "object", "required": ["role"], "properties": {
    "role": {"type": "string", "enum": list(ROLES)}, "content": {"type": "string"}}}})
PENALTY = loose({"type": "number", "minimum": -2, "maximum": 2})
MODEL = loose({"type": "string"})
INPUT = loose({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})

ChatCompletionBody = create_model(
    "ChatCompletionBody", __base__=Body, model=(MODEL, None), stream=(STREAM, None), messages=(MESSAGES, ...),
    **GENERATION_FIELDS,
    presence_penalty=(PENALTY, None), frequency_penalty=(PENALTY, None))
CompletionBody = create_model(
    "CompletionBody", __base__=Body, model=(MODEL, None), prompt=(loose({"type": "string", "minLength": 1}), ...),
    stream=(STREAM, None),
    suffix=(loose({"type": "string", "description": "Fill in the middle: the text after the gap. Only for models "
                   "with fill-in-the-middle tokens (see /api/models); 400 otherwise."}), None),
    **GENERATION_FIELDS, presence_penalty=(PENALTY, None), frequency_penalty=(PENALTY, None))
EmbeddingsBody = create_model("EmbeddingsBody", __base__=Body, model=(MODEL, None), input=(INPUT, ...))

# llama.cpp and KoboldCpp name some settings their own way: (their name, ours)
LLAMACPP_NAMES = {"n_predict": "max_tokens", "temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
                  "min_p": "min_p", "repeat_penalty": "repeat_penalty", "stop": "stop", "seed": "seed"}
KOBOLD_NAMES = {"max_length": "max_tokens", "temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                "min_p": "min_p", "rep_pen": "repeat_penalty", "sampler_seed": "seed", "stop_sequence": "stop"}


def renamed(names: dict[str, str]) -> dict[str, Any]:
    """The generation fields under another dialect's names (their errors name our setting)."""
    return {ours: (Annotated[GENERATION_FIELDS[ours][0], Field(alias=theirs)], None) for theirs, ours in names.items()}


LlamaCompletionBody = create_model(
    "LlamaCompletionBody", __base__=Body, prompt=(loose({"type": "string", "minLength": 1}), ...),
    stream=(STREAM, None), **renamed(LLAMACPP_NAMES))
KoboldBody = create_model(
    "KoboldBody", __base__=Body, prompt=(loose({"type": "string", "minLength": 1}), ...),
    max_context_length=(loose({"type": "integer", "minimum": 1}), None), **renamed(KOBOLD_NAMES))
TokenizeBody = create_model("TokenizeBody", __base__=Body, content=(loose({"type": "string"}), ...),
                            add_special=(loose({"type": "boolean"}), None),
                            with_pieces=(loose({"type": "boolean"}), None))
DetokenizeBody = create_model("DetokenizeBody", __base__=Body, tokens=(loose(
    {"type": "array", "items": {"type": "integer", "minimum": 0}}), ...))

OPTIONS = loose({"type": "object", "description": "temperature, top_p, top_k, min_p, num_predict, stop, seed, "
                                                 "repeat_penalty, num_ctx"})
KEEP_ALIVE = loose({})
OllamaShowBody = create_model("OllamaShowBody", __base__=Body, model=(MODEL, None), name=(MODEL, None))
OllamaGenerateBody = create_model(
    "OllamaGenerateBody", __base__=Body, model=(MODEL, None), prompt=(loose({"type": "string"}), None),
    system=(loose({"type": "string"}), None), raw=(loose({"type": "boolean"}), None), stream=(STREAM, None),
    keep_alive=(KEEP_ALIVE, None), options=(OPTIONS, None))
OllamaChatBody = create_model("OllamaChatBody", __base__=Body, model=(MODEL, None), stream=(STREAM, None),
                              keep_alive=(KEEP_ALIVE, None), options=(OPTIONS, None), messages=(MESSAGES, ...))
OllamaEmbeddingsBody = create_model("OllamaEmbeddingsBody", __base__=Body, model=(MODEL, None),
                                    prompt=(loose({"type": "string", "minLength": 1}), ...))
OllamaPullBody = create_model("OllamaPullBody", __base__=Body, model=(MODEL, None), name=(MODEL, None),
                              stream=(STREAM, None), insecure=(loose({"type": "boolean"}), None))


# responses (documented; the handlers shape them) ------------------------------------------------------

class Reply(BaseModel):
    """A response body. A key it may leave out is Typed[T | None, T] = None: documented as a T,
    absent (None) at times."""


class ErrorDetail(Reply):
    code: str | int
    message: str
    request_id: Typed[str | None, str] = None
    type: Typed[str | None, str] = None


class Error(Reply):
    error: Annotated[ErrorDetail | str, Field(description="Ollama's routes: the message alone")]


class TimeWindow(Reply):
    start: str
    end: str
    phrase: str


class Recalled(Reply):
    id: Typed[int | None, int] = None
    text: Typed[str | None, str] = None
    score: Typed[float | None, float] = None
    created_at: Typed[str | None, str] = None


class Message(Reply):
    id: int
    ai: bool
    text: str
    date: str


class ReplyMessage(Message):
    memories: Typed[list[Recalled] | None, list[Recalled]] = None
    memory_window: TimeWindow | None = None
    lore: Typed[list[dict] | None, list[dict]] = None


class CompatMessage(Reply):
    id: int
    ai: Annotated[str, WithJsonSchema({"type": "string", "enum": ["true", "false"]})]
    text: str
    date: str


class ExportedMessage(Reply):
    ai: bool
    text: Annotated[str, Field(min_length=1)]
    date: Typed[str | None, str] = None


class MessagesJson(Reply):
    messages: list[ExportedMessage]


class CharacterJson(Reply):
    name: str
    description: str
    first_mes: str
    mes_example: str


class CompanionData(Reply):
    id: int
    name: str
    persona: str
    example_dialogue: str
    first_message: str
    long_term_mem: int
    short_term_mem: int
    roleplay: int
    dialogue_tuning: Typed[int | None, int] = None
    avatar_path: str


class UserData(Reply):
    id: int
    name: str
    persona: str


def described(kind: Any, description: str) -> Any:
    return Annotated[kind, Field(description=description)]


COMPANION_FIELDS: dict[str, Any] = {
    "id": (int, ...), "name": (str, ...),
    **{k: (v[0], None) for k, v in CARD_FIELDS.items()},
    **{k: (v.annotation, None) for k, v in CompanionSettings.model_fields.items() if k != "preset_id"},
    "preset_id": (described(int | None, "the generation preset it uses (null: none)"), None),
    "generation": (dict, None), "active": (bool, None), "lorebook_ids": (list[int], None), "avatar_url": (str, None),
    "created_at": (str, None), "updated_at": (str, None),
    "chat_count": (described(int, "in lists: how many chats it has"), None),
    "last_chat_at": (described(str | None, "in lists: its newest message but greetings (null: none)"), None)}
Companion = create_model("Companion", __base__=Reply, **COMPANION_FIELDS)


class Persona(Reply):
    id: int
    name: str
    persona: str
    active: Typed[bool | None, bool] = None
    avatar_url: Typed[str | None, described(str | None, "null while it has no avatar")] = None
    created_at: Typed[str | None, str] = None
    updated_at: Typed[str | None, str] = None


class Preset(Reply):
    id: int
    name: str
    builtin: Typed[bool, described(bool, "built in: used and copied, never changed or deleted")]
    settings: Generation
    companion_ids: Typed[list[int] | None, described(list[int], "the companions that use it")] = None
    created_at: Typed[str | None, str] = None
    updated_at: Typed[str | None, str] = None


class ImportedPreset(Preset):
    ignored: Typed[list[str] | None, list[str]] = None


class LoreEntry(Reply):
    index: int
    id: int | None = None
    keys: Typed[list[str] | None, list[str]] = None
    secondary_keys: Typed[list[str] | None, list[str]] = None
    content: Typed[str | None, str] = None
    comment: Typed[str | None, str] = None
    constant: Typed[bool | None, bool] = None
    selective: Typed[bool | None, bool] = None
    insertion_order: Typed[int | None, int] = None
    enabled: Typed[bool | None, bool] = None
    position: Typed[str | None, str, WithJsonSchema({"type": "string", "enum": ["before_char", "after_char"]})] = None
    case_sensitive: Typed[bool | None, bool] = None


class Lorebook(Reply):
    id: int
    name: str
    description: Typed[str | None, str] = None
    format: Typed[str | None, str] = None
    scan_depth: int | None = None
    token_budget: int | None = None
    entry_count: Typed[int | None, int] = None
    companion_ids: Typed[list[int] | None, list[int]] = None
    entries: Typed[list[LoreEntry] | None, list[LoreEntry]] = None
    created_at: Typed[str | None, str] = None
    updated_at: Typed[str | None, str] = None


class Chat(Reply):
    id: int
    companion_id: int
    title: Typed[str | None, str] = None
    created_at: Typed[str | None, str] = None
    active: Typed[bool | None, bool] = None
    message_count: Typed[int | None, int] = None
    last_message_at: str | None = None
    story_so_far: Typed[bool | None, bool] = None
    story: Typed[str | None, str] = None
    members: Typed[list[int] | None, described(list[int], "the chat's companions, in order")] = None
    group_id: Typed[int | None, described(int | None, "a group chat's group")] = None
    messages: Typed[list | None, list] = None


class ChatMessage(Reply):
    id: int
    chat_id: Typed[int | None, int] = None
    ai: bool
    text: str
    swipes: Typed[list[str] | None, list[str]] = None
    swipe_id: Typed[int | None, int] = None
    greeting: Typed[bool | None, bool] = None
    date: Typed[str | None, str] = None
    companion_id: Typed[int | None, described(int | None, "who said it (ai)")] = None
    user_id: Typed[int | None, described(int | None, "which persona said it (not ai)")] = None
    initiated: Typed[bool | None, described(bool, "the companion wrote it first, not in reply")] = None


class Memory(Reply):
    id: int
    companion_id: Typed[int | None, int] = None
    text: str
    display_text: Typed[str | None, str] = None
    source: str
    document_id: int | None = None
    chat_id: int | None = None
    first_message_id: int | None = None
    last_message_id: int | None = None
    created_at: str
    score: float | None = None


class Document(Reply):
    id: int
    companion_id: Typed[int | None, int] = None
    name: str
    media_type: Typed[str | None, str] = None
    size: Typed[int | None, int] = None
    chunks: Typed[int | None, int] = None
    created_at: Typed[str | None, str] = None


class CompanionGeneration(Reply):
    companion_id: int
    defaults: dict
    preset_id: int | None = None
    preset: Typed[dict | None, dict] = None
    companion: dict
    effective: Typed[dict, described(dict, "defaults < preset < companion")]


class Config(Reply):
    model: dict
    generation: dict
    initiative: Initiative
    pending_model: dict | None = None
    last_error: str | None = None


class GroupMember(Reply):
    companion_id: int
    name: Typed[str | None, str] = None
    muted: Typed[bool | None, bool] = None
    talkativeness: float | None = None
    avatar_url: Typed[str | None, str] = None


class Group(Reply):
    id: int
    name: str
    preset_id: int | None = None
    strategy: Annotated[str, WithJsonSchema({"type": "string", "enum": list(STRATEGIES)})]
    members: list[GroupMember]
    avatar_url: Typed[str | None, str] = None
    active_chat_id: int | None = None
    active: Typed[bool | None, bool] = None
    created_at: Typed[str | None, str] = None
    updated_at: Typed[str | None, str] = None


class MemberReply(Reply):
    message: ChatMessage
    memories: Typed[list | None, list] = None
    lore: Typed[list | None, list] = None
    memory_window: dict | None = None


class GroupTurn(Reply):
    chat_id: int
    message: ChatMessage | None = None
    replies: list[MemberReply]


class Status(Reply):
    version: str
    data_dir: str
    model: dict
    embedder: dict
    counts: dict
