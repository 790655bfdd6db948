"""The schemas pydantic v2 and the `openai` SDK write for Optional and Union fields (an anyOf
beside annotations: `title`, `description`, `default`) are served and parse back into the model,
on the default backend (OpenVINO) and on native: the refusal of constraints beside anyOf, oneOf
and allOf (tool_schemas.check_enforced) must not catch them."""

import json
from typing import Annotated, Literal

import jsonschema_rs
import openai
import pytest
from pydantic import BaseModel, Field

MODEL = "tiny-llama"
HELLO = [{"role": "user", "content": "Describe a person."}]


# Bounded everywhere: the random model ends only where the grammar makes it. `X | None` is
# Optional[X] (the same schema).
class Address(BaseModel):
    city: str = Field(max_length=8)


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Profile(BaseModel):
    age: int | None = Field(None, ge=0, le=99, description="in years")
    home: Address | None = None
    pet: Cat | Dog = Field(description="one pet")
    tag: Annotated[int, Field(ge=0, le=9)] | Annotated[str, Field(max_length=4)]
    scores: list[Annotated[int, Field(ge=0, le=5)]] | None = Field(None, max_length=3)
    level: Literal["a", "b"] | None = None


@pytest.fixture(scope="module", params=["openvino", "native"])
def api(request, tiny_llama):
    if request.param == "openvino":
        url = request.getfixturevalue("agent_chat_url")
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
        return
    from llm_chat.testing import tiny_app
    from mlstack.testing import live_server

    with live_server(tiny_app(tiny_llama, context_tokens=2048)) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)


def test_the_sdks_parse_round_trips_optional_and_union_fields(api):
    # The SDK's strict form: every field required, Optional as anyOf [..., null] + title.
    (choice,) = api.beta.chat.completions.parse(
        model=MODEL, messages=HELLO, response_format=Profile, max_tokens=300, temperature=0
    ).choices
    assert choice.finish_reason == "stop", choice.message.content
    assert isinstance(choice.message.parsed, Profile)


def test_pydantics_own_schema_is_served_and_validates(api):
    # pydantic's form: optional fields with `default: null` beside the anyOf.
    schema = Profile.model_json_schema()
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    (choice,) = api.chat.completions.create(
        model=MODEL, messages=HELLO, response_format=response_format, max_tokens=300, temperature=0
    ).choices
    assert choice.finish_reason == "stop", choice.message.content
    assert jsonschema_rs.validator_for(schema).is_valid(json.loads(choice.message.content))
    Profile.model_validate_json(choice.message.content)
