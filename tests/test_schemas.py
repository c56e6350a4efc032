"""Request validation through the body models (companion/api/schemas.py): the error messages are
the ones the hand-written checks gave (a sample of them, recorded before the models replaced
those checks), the lax forms stay accepted, and the OpenAPI document is generated from the models and the URL map."""

from __future__ import annotations

import re
from typing import Any

# (method, path, body, status, message): what each dialect answered before the models
MESSAGES: list[tuple[str, str, Any, int, str]] = [
    # the AI Companion API (plain-text errors)
    ("post", "/api/prompt", [1], 400, "the request body must be a JSON object"),
    ("post", "/api/prompt", {}, 400, "'prompt' is required and must be a string"),
    ("post", "/api/prompt", {"prompt": "  "}, 400, "'prompt' must not be empty"),
    ("post", "/api/prompt", {"prompt": "x" * 100_001}, 400, "'prompt' is too long (at most 100000 characters)"),
    ("post", "/api/prompt", {"prompt": "hi", "temperature": "hot"}, 400, "'temperature' must be a number"),
    ("post", "/api/prompt", {"prompt": "hi", "temperature": True}, 400, "'temperature' must be a number"),
    ("post", "/api/prompt", {"prompt": "hi", "max_tokens": 1.5}, 400, "'max_tokens' must be an integer"),
    ("post", "/api/prompt", {"prompt": "hi", "max_tokens": "20"}, 400, "'max_tokens' must be an integer"),
    ("post", "/api/prompt", {"prompt": "hi", "top_p": 2}, 400, "'top_p' must be between 0 and 1"),
    ("post", "/api/prompt", {"prompt": "hi", "repeat_penalty": 0}, 400, "'repeat_penalty' must be between 0.01 and 5"),
    ("post", "/api/prompt", {"prompt": "hi", "seed": 2**31}, 400, "'seed' must be between -1 and 2.14748e+09"),
    ("post", "/api/prompt", {"prompt": "hi", "stop": [""]}, 400,
     "'stop' must be a list of at most 16 non-empty strings"),
    ("post", "/api/prompt", {"prompt": "hi", "stop": ["a"] * 17}, 400,
     "'stop' must be a list of at most 16 non-empty strings"),
    ("post", "/api/prompt", {"prompt": "hi", "stop": 5}, 400, "'stop' must be a list of at most 16 non-empty strings"),
    ("post", "/api/prompt", {"prompt": "hi", "chat_id": "x"}, 400, "'chat_id' is required and must be an integer"),
    ("post", "/api/prompt", {"prompt": "hi", "chat_id": 0}, 400, "'chat_id' must be between 1 and 4611686018427387904"),
    ("post", "/api/prompt", {"prompt": "hi", "speak": "yes"}, 400, "'speak' must be true or false"),
    ("post", "/api/prompt", {"prompt": "hi", "speak": True}, 400, "'speak' needs a streamed reply (\"stream\": true)"),
    ("post", "/api/regenerate_message", {"top_k": -1}, 400, "'top_k' must be between 0 and 100000"),
    ("post", "/api/editMessage", {"id": 1}, 400, "'new_text' is required and must be a string"),
    ("post", "/api/editMessage", {"new_text": "x", "id": -1}, 400, "'id' must be between 0 and 4611686018427387904"),
    ("post", "/api/editMessage", {"new_text": "x", "id": 1.5}, 400, "'id' is required and must be an integer"),
    ("post", "/api/removeMessage", {"id": True}, 400, "'id' is required and must be an integer"),
    ("post", "/api/change/longTermMemory", {"limit": 101}, 400, "'limit' must be between 0 and 100"),
    ("post", "/api/change/shortTermMemory", {"limit": "lots"}, 400, "'limit' is required and must be an integer"),
    ("post", "/api/change/roleplay", {"enable": "yes"}, 400, "'enable' is required and must be true or false"),
    ("post", "/api/change/dialogue_tuning", {"enable": 2}, 400, "'enable' is required and must be true or false"),
    ("post", "/api/change/companionName", {"companion_name": "x" * 201}, 400,
     "'companion_name' is too long (at most 200 characters)"),
    ("post", "/api/change/companionName", {"companion_name": " "}, 400, "'companion_name' must not be empty"),
    ("post", "/api/change/firstMessage", {"first_message": None}, 400,
     "'first_message' is required and must be a string"),
    ("post", "/api/change/companionData", {"name": "A", "example_dialogue": "", "first_message": "",
                                           "long_term_mem": 1, "short_term_mem": 1, "roleplay": True}, 400,
     "'persona' is required and must be a string"),
    ("post", "/api/change/companionData", {"name": "A", "persona": "", "example_dialogue": "", "first_message": "",
                                           "long_term_mem": 1, "short_term_mem": 5000, "roleplay": True}, 400,
     "'short_term_mem' must be between 0 and 1000"),
    ("post", "/api/change/userData", {"persona": "p"}, 400, "'name' is required and must be a string"),
    ("post", "/api/change/userPersona", {"user_persona": 5}, 400, "'user_persona' is required and must be a string"),
    ("post", "/api/addData", {"text": ""}, 400, "'text' must not be empty"),
    ("post", "/api/import/messagesJson", {"messages": "x"}, 400,
     "'messages' is required and must be a list of {ai, text}"),
    ("post", "/api/import/messagesJson", {"messages": [5]}, 400, "messages[0] must be an object with 'ai' and 'text'"),
    ("post", "/api/import/messagesJson", {"messages": [{"ai": True, "text": "a"}, {"ai": True}]}, 400,
     "messages[1]: 'text' is required and must be a string"),
    ("post", "/api/import/messagesJson", {"messages": [{"ai": "no", "text": "a"}]}, 400,
     "messages[0]: 'ai' is required and must be true or false"),
    ("post", "/api/import/messagesJson", {"messages": [{"ai": True, "text": "a", "date": "never"}]}, 400,
     "messages[0]: 'date' must be a date, e.g. 2026-11-27T15:00:00+01:00"),
    ("post", "/api/import/characterJson", {"name": ""}, 400, "'name' must not be empty"),
    ("post", "/api/import/characterJson", {"name": "A", "description": "d", "first_mes": 1}, 400,
     "'first_mes' is required and must be a string"),
    # ours
    ("put", "/api/config", {"foo": 1}, 400, "unknown key(s): foo; use 'model', 'generation' and 'initiative'"),
    ("put", "/api/config", {"generation": {"temperature": 9}}, 400, "'temperature' must be between 0 and 5"),
    ("put", "/api/config", {"generation": {"bogus": 1}}, 400, "unknown generation setting(s): bogus"),
    ("put", "/api/config", {"generation": []}, 400, "'generation' must be an object"),
    ("put", "/api/config", {"model": {"n_ctx": "big"}}, 400, "'model.n_ctx' must be an integer between 0 and 1048576"),
    ("put", "/api/config", {"model": {"flash_attn": 1}}, 400, "'model.flash_attn' must be true or false"),
    ("put", "/api/config", {"model": {"path": " "}}, 400, "'model.path' must be a non-empty string"),
    ("put", "/api/config", {"model": {"size": 1}}, 400, "unknown model setting 'model.size'"),
    ("put", "/api/config", {"initiative": {"max_per_day": 99}}, 400, "initiative.max_per_day must be between 0 and 48"),
    ("put", "/api/config", {"initiative": {"enabled": True}}, 400,
     "initiative.enabled is each companion's own setting (PATCH /api/companions/{id})"),
    ("patch", "/api/companions/1/generation", {"seed": 1.5}, 400, "'seed' must be an integer"),
    ("patch", "/api/companions/1/generation", {"warmth": 1}, 400, "unknown generation setting(s): warmth"),
    ("post", "/api/companions", {}, 400, "'name' is required and must be a string"),
    ("post", "/api/companions", {"name": "A", "long_term_mem": 500}, 400, "'long_term_mem' must be between 0 and 100"),
    ("post", "/api/companions", {"name": "A", "bogus": 1}, 400, "unknown field(s): bogus"),
    ("post", "/api/companions", {"name": "A", "roleplay": "on"}, 400, "'roleplay' is required and must be true or false"),
    ("post", "/api/companions", {"name": "A", "preset_id": 0}, 400,
     "'preset_id' must be between 1 and 9223372036854775807"),
    ("post", "/api/companions", {"name": "A", "voice": "joe"}, 400,
     "'voice' must be an object like {\"voice\": \"joe\", \"speed\": 1.0}"),
    ("post", "/api/companions", {"name": "A", "voice": {"speed": 9}}, 400, "voice.speed must be between 0.25 and 4"),
    ("post", "/api/companions", {"name": "A", "initiative": 1}, 400,
     "'initiative' must be an object, e.g. {\"enabled\": true, \"hours\": \"9-21\"}"),
    ("post", "/api/companions", {"name": "A", "initiative": {"hours": "9"}}, 400,
     "initiative.hours must be 'START-END', e.g. '9-21', not '9'"),
    ("patch", "/api/companions/1", {"name": 5}, 400, "'name' is required and must be a string"),
    ("post", "/api/personas", {"name": "A", "persona": 5}, 400, "'persona' is required and must be a string"),
    ("post", "/api/personas", {"name": "A", "age": 5}, 400, "unknown field(s): age"),
    ("post", "/api/chats", {"greeting_index": 5000}, 400, "'greeting_index' must be between 0 and 1000"),
    ("post", "/api/chats", {"title": "x" * 201}, 400, "'title' is too long (at most 200 characters)"),
    ("post", "/api/chats", {"companion_id": "one"}, 400, "'companion_id' is required and must be an integer"),
    ("patch", "/api/chats/1", {}, 400, "give 'title' and/or 'story_so_far'"),
    ("patch", "/api/chats/1", {"story_so_far": "yes"}, 400, "'story_so_far' is required and must be true or false"),
    ("patch", "/api/messages/1", {"text": ""}, 400, "'text' must not be empty"),
    ("put", "/api/messages/1/swipe", {"index": "a"}, 400, "'index' is required and must be an integer"),
    ("put", "/api/messages/1/swipe", {"index": 10_001}, 400, "'index' must be between 0 and 10000"),
    ("post", "/api/presets", {"name": "P", "settings": {"temperature": None}}, 400,
     "settings temperature must not be null"),
    ("post", "/api/presets", {"name": "P", "settings": []}, 400,
     "'settings' must be an object of generation settings, e.g. {\"temperature\": 0.7}"),
    ("post", "/api/presets", {"name": "P", "settings": {"heat": 1}}, 400, "unknown generation setting(s): heat"),
    ("post", "/api/presets", {"name": "P", "copy_of": 0}, 400, "'copy_of' must be between 1 and 9223372036854775807"),
    ("post", "/api/presets", {"name": "P", "colour": 0}, 400, "unknown field(s): colour"),
    ("patch", "/api/presets/1", {"name": ""}, 400, "'name' must not be empty"),
    ("post", "/api/memories", {"text": ""}, 400, "'text' must not be empty"),
    ("post", "/api/memories", {"text": "x", "created_at": "soon"}, 400,
     "'created_at' must be a date, e.g. 2026-11-27T15:00:00+01:00"),
    ("post", "/api/memories", {"text": "x", "companion_id": 0}, 400,
     "'companion_id' must be between 1 and 4611686018427387904"),
    ("patch", "/api/memories/1", {"text": 5}, 404, "no memory with id 1"),
    ("post", "/api/groups/1/turn", {"text": 5}, 400, "'text' is required and must be a string"),
    ("post", "/api/groups/1/reply", {}, 400, "'companion_id' is required and must be an integer"),
    ("post", "/api/companions/1/lorebooks", {"lorebook_id": "x"}, 400,
     "'lorebook_id' is required and must be an integer"),
    ("get", "/api/companions?limit=0", None, 400, "'limit' must be between 1 and 200"),
    ("get", "/api/chats?offset=x", None, 400, "'offset' is required and must be an integer"),
    ("get", "/api/companions?sort=age", None, 400, "sort must be one of name, created, modified, last_chat"),
    # OpenAI
    ("post", "/v1/chat/completions", {}, 400, "'messages' must be a non-empty list"),
    ("post", "/v1/chat/completions", {"messages": [{"role": "x"}]}, 400,
     "messages[0] needs a role: one of system, user, assistant, developer, tool"),
    ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, 400,
     "messages[0].content must be a string or a list of content parts"),
    ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "presence_penalty": 3}, 400,
     "'presence_penalty' must be a number between -2 and 2"),
    ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 0},
     400, "'max_tokens' must be between 1 and 32768"),
    ("post", "/v1/completions", {"prompt": ""}, 400, "'prompt' must be a non-empty string"),
    ("post", "/v1/completions", {"prompt": "a", "suffix": 1}, 400, "'suffix' must be a string"),
    ("post", "/v1/embeddings", {"input": []}, 400,
     "'input' must be a non-empty string or a list of up to 256 non-empty strings"),
    ("post", "/v1/audio/speech", {"input": ""}, 400, "'input' must not be empty"),
    ("post", "/v1/audio/speech", {"input": "x", "response_format": "ogg2"}, 400,
     "'response_format' must be one of wav, mp3, opus, aac, flac, pcm"),
    # Ollama
    ("post", "/api/generate", {"prompt": 5}, 400, "'prompt' must be a string"),
    ("post", "/api/generate", {"prompt": "x", "options": {"num_ctx": 0}}, 400,
     "'options.num_ctx' must be a positive integer"),
    ("post", "/api/generate", {"prompt": "x", "options": {"temperature": "x"}}, 400, "'temperature' must be a number"),
    ("post", "/api/generate", {"prompt": "x", "options": "x"}, 400, "'options' must be an object"),
    ("post", "/api/generate", {"prompt": "x", "system": 1}, 400, "'system' must be a string"),
    ("post", "/api/chat", {"messages": []}, 400, "'messages' must be a non-empty list"),
    ("post", "/api/embed", {"input": [""]}, 400,
     "'input' must be a non-empty string or a list of up to 256 non-empty strings"),
    ("post", "/api/embeddings", {"prompt": ""}, 400, "'prompt' must be a non-empty string"),
    ("delete", "/api/delete", {"model": ""}, 400, "'model' must name a model, e.g. hf.co/OWNER/REPO:Q4_K_M"),
    # KoboldCpp
    ("post", "/api/v1/generate", {}, 400, "'prompt' must be a non-empty string"),
    ("post", "/api/v1/generate", {"prompt": "x", "max_context_length": 0}, 400,
     "'max_context_length' must be a positive integer"),
    ("post", "/api/v1/generate", {"prompt": "x", "rep_pen": 9}, 400, "'repeat_penalty' must be between 0.01 and 5"),
    # llama.cpp
    ("post", "/completion", {"prompt": [1]}, 400, "'prompt' must be a non-empty string (token arrays are not supported)"),
    ("post", "/completion", {"prompt": "x", "n_predict": 0}, 400, "'max_tokens' must be between 1 and 32768"),
    ("post", "/tokenize", {"content": 1}, 400, "'content' must be a string"),
    ("post", "/detokenize", {"tokens": [-1]}, 400, "'tokens' must be a list of token ids"),
]


def message_of(response) -> str:
    """The error message in any dialect's error shape."""
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or "error" not in body:       # the AI Companion API's plain text
        return re.sub(r" \[request \w+\]$", "", response.get_data(as_text=True)[:300])
    error = body["error"]
    return error if isinstance(error, str) else error["message"]


def test_error_messages_are_as_before(client):
    wrong = []
    for method, path, body, status, message in MESSAGES:
        response = getattr(client, method)(path, json=body)
        got = (response.status_code, message_of(response))
        if got != (status, message):
            wrong.append((method, path, body, got))
    assert not wrong, "\n".join(map(repr, wrong))


# the lax forms each dialect accepts: (method, path, body, status, text the response holds)
ACCEPTED: list[tuple[str, str, Any, int, str]] = [
    ("post", "/api/change/longTermMemory", {"limit": "7"}, 200, "Changed long term memory limit for ai"),
    ("post", "/api/change/shortTermMemory", {"limit": 12.0}, 200, "Changed short term memory limit for ai"),
    ("post", "/api/change/roleplay", {"enable": 1}, 200, "Enabled roleplay"),
    ("post", "/api/change/dialogue_tuning", {"enable": 0}, 200, "Disabled dialogue tuning"),
    ("post", "/api/change/companionName", {"companion_name": "  Aria  "}, 200, "Changed companion name"),
    ("post", "/api/change/companionData", {"name": "Aria", "persona": "kind", "example_dialogue": "",
                                           "first_message": "Hi!", "long_term_mem": "3", "short_term_mem": " 8 ",
                                           "roleplay": 0}, 200, "Data of your AI companion has been changed"),
    ("get", "/api/companionData", None, 200, '"long_term_mem":3'),
    ("get", "/api/companionData", None, 200, '"name":"Aria"'),
    ("post", "/api/import/messagesJson", {"messages": [{"ai": 0, "text": "hello", "date": 1764000000},
                                                       {"ai": 1, "text": "hi", "date": ""}]}, 200,
     "Imported messages to your ai companion memory"),
    ("patch", "/api/companions/1/generation", {"max_tokens": 20.0, "temperature": 1, "stop": "END", "seed": None},
     200, '"max_tokens":20'),
    ("post", "/api/chats", {"companion_id": "", "greeting_index": "0", "title": "Evening"}, 201, '"title":"Evening"'),
    ("patch", "/api/chats/1", {"story_so_far": 1}, 200, '"story_so_far":true'),
    ("get", "/api/companions?limit=1&offset=0", None, 200, '"total":1'),
    ("post", "/api/presets", {"name": " Calm ", "settings": {"temperature": 0.3, "top_k": 10.0}}, 201, '"name":"Calm"'),
    ("post", "/api/personas", {"name": "Sam"}, 201, '"persona":""'),
    ("post", "/api/memories", {"text": "Sam likes tea.", "companion_id": "1", "created_at": "2026-11-27T15:00:00+01:00"},
     201, '"created_at":"2026-11-27T14:00:00+00:00"'),
]


def test_lax_forms_are_accepted(client):
    wrong = []
    for method, path, body, status, held in ACCEPTED:
        response = getattr(client, method)(path, json=body)
        text = response.get_data(as_text=True).replace(": ", ":").replace(", ", ",")
        if response.status_code != status or held not in text:
            wrong.append((method, path, body, response.status_code, text[:300]))
    assert not wrong, "\n".join(map(repr, wrong))


def test_every_served_route_is_described_in_routes(app):
    from companion.api.openapi import ROUTES, served

    served_keys = {f"{method} {path}" for path, method, _ in served(app.url_map)}
    assert served_keys - set(ROUTES) == set(), "routes the app serves that ROUTES does not describe"
    assert set(ROUTES) - served_keys == set(), "ROUTES describes routes the app does not serve"


def test_document_is_generated_from_the_models(client):
    document = client.get("/api/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    prompt = schemas["PromptBody"]
    assert prompt["required"] == ["prompt"]
    assert prompt["properties"]["top_p"]["maximum"] == 1           # config.py's declared bound
    assert prompt["properties"]["stop"]["maxItems"] == 16
    assert schemas["LongTermMemoryBody"]["properties"]["limit"]["maximum"] == 100
    body = document["paths"]["/api/prompt"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PromptBody"}
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"].rsplit("/", 1)[1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(document)
    assert refs - set(schemas) == set(), "$refs to schemas the document lacks"
