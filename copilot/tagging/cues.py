"""Generic cue families for the rules tagger, written from the tag definitions, not from examples.

A rubric tag names the families it uses (`cues.families`); `cues.phrases` add literal ones.
Patterns are a tiny language over the *clean* words (see normalize.py), compiled into spaCy
Matcher token patterns by `compile_pattern`:

    word        the word (LOWER)
    a/b/c       one of these words
    @lex        any word of the lexicon `lex` below
    ~lemma      by lemma (lookup lemmatizer): ~go matches go, goes, going, went
    ~a/b        one of these lemmas
    _           any one word;  _{0,3}  zero to three words
    x?          any token above, optional

Weights: STRONG fires on its own; WEAK only when the classifier agrees (see rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass

STRONG = 0.9
MEDIUM = 0.75
WEAK = 0.45

LEXICON: dict[str, list[str]] = {
    # what a requirement question is about
    "req": """users user customers customer clients client people scale traffic qps rps requests request load latency
        budget cost costs money spend bill sla slo slas availability uptime nines constraint constraints requirement
        requirements success succeed goal goals deadline region regions size sizes volume peak concurrent concurrently
        ratio reads writes read write daily active retention consistency consistent ordering order compliance gdpr
        devices device platform platforms mobile web browser browsers expected expect target targets need needs must
        support existing integrate limit acceptable accuracy accurate fresh freshness stale realtime real-time
        personalized secure security encrypted encryption privacy versions version history storage data files file
        throughput rate limits growth grow quota concern priority priorities important matter matters care tolerance
        tolerate okay ok fine offline online allowed permitted legal regulation regulations regulated scope deletes delete edits ranked ranking done criteria spike spikes
        burst bursts seasonal peaks metric metrics kpi measure measured csat nps satisfaction timezone zone zones
        language languages locale longest biggest largest max maximum minimum typical average median worst highest
        lowest always depend depends usually""".split(),
    "wh": "what who whom which when where why how".split(),
    "how_q": """many much big large often long fast fresh stale accurate far frequently old quickly soon strict
        important""".split(),
    "aux": "is are do does did can could should will would has have was were am".split(),
    "subj": "we i you it they the this that users there a an our your these those he she people someone".split(),
    "confirm": "right correct fair ok reasonable true accurate".split(),
    # words that weigh: what a choice gains or costs
    "eval": """fast faster fastest slow slower slowest quick quicker quickly instant instantly cheap cheaper cheapest
        expensive pricey cost costs costly price pay paying paid bill money free simple simpler simplest simplicity
        complex complicated complexity messy hard harder hardest easy easier easiest difficult painful latency lag
        lags delay delays stale fresh fresher fresh reliable reliability unreliable safe safer safety unsafe risk
        risky overhead scale scales scaling scalable memory ram cpu cycles storage disk bandwidth consistent
        consistency inconsistent available availability throughput lose loses losing lost waste wastes wasted
        bottleneck fragile flexible flexibility rigid control durability durable accurate accuracy precision
        precise operational ops maintain maintenance effort work months weeks time quickly lock locks contention
        collisions friendly friendlier snappy snappier secure isolation noisy hot bad good great nice better worse
        overkill heavy heavier lightweight robust crude clean ugly harder lower higher more less fewer bigger
        smaller helps help saves save saving savings gain gains benefit benefits win wins drop drops stall stalls
        break breaks correctness duplicates duplicate wait waits waiting block blocks slowdown overload load
        outage outages survive resilient resilience coverage control fairness fair unfair hate offline
        conflicts conflict overwrite overwrites reconcile isolated isolates annoying appeal upside downside
        pros cons penalty sacrifice sacrifices tradeoff tradeoffs cons expensive costs cheaper burden late
        early slowly perfect enormous huge massive tiny simpler shorter longer lighter riskier painless speed speeds
        speedup hours minutes trivial struggle struggles downtime poisoned corrupt exact approximate approximately
        persistence complexity cheaply expensively struggling hammer hammers overwhelm overwhelms weak weaker strong
        stronger bill risks regression regressions doubles triples""".split(),
    # a gain and a cost named in one sentence: "would speed up the lookups and slow down the inserts"
    "gain": """faster fast quick quicker sooner earlier instant instantly cheap cheaper cheaply simple simpler simplest easy easier
        trivial better improve improves improved saves save helps help gain gains benefit benefits win wins speeds
        speed speedup safe safer reliable robust flexible flexibility lighter smaller fresher snappier snappy
        scales scalable decouples decouple isolates resilient durable accurate exact free stronger""".split(),
    "cost": """slow slower slows costs cost costly expensive harder hard worse lose loses losing lost risk risky
        overhead burden drawback struggle struggles break breaks stale lag lags delay delays waste wastes complex
        complicated complexity messy painful pay paying price penalty downtime bottleneck contention fragile
        heavier bigger duplicates conflicts inconsistent later weaker risks regression regressions doubles triples
        bill""".split(),
    "comparative": """faster slower cheaper simpler easier harder safer riskier lower higher better worse bigger smaller
        fresher friendlier snappier lighter heavier quicker more less fewer longer shorter weaker stronger""".split(),
    "contrast": "but though although whereas while however yet except".split(),
    # commitment verbs after I/we will / would / am going to
    "decide_verb": """go use pick choose keep put store stick start leave cut drop skip switch handle shard add make build
        treat support batch focus prefer avoid replace split partition cache run write do implement rely store
        size scale autoscale replicate index queue stream denormalize normalize encrypt compress throttle retry
        dedupe buffer precompute poll prioritize tackle postpone route separate isolate cap host migrate rewrite
        refactor reuse adopt swap optimize persist reject approve launch target combine serve pin freeze commit
        ship defer punt limit restrict model index key deploy accept merge revert undo remove rip
        simplify default lean bet commit standardize design structure represent move change buy""".split(),
    "decide_lemma": """go use pick choose keep put store stick start leave cut drop skip switch handle shard add make
        size scale autoscale replicate index queue stream denormalize encrypt compress throttle retry dedupe buffer
        precompute poll prioritize tackle postpone route separate isolate cap host migrate rewrite refactor reuse
        adopt swap optimize persist reject approve launch target combine serve pin freeze push punt defer
        build treat support batch focus prefer avoid replace split partition cache run write do implement rely
        ship defer punt limit restrict model index key deploy accept merge revert undo remove rip simplify
        default lean bet commit standardize design structure represent move change buy""".split(),
    "decide_now": """use pick choose keep put store stick leave cut drop skip switch shard add build treat support batch
        focus prefer avoid replace split partition cache implement move ship defer punt limit restrict deploy accept
        merge revert undo remove rip simplify default lean bet commit standardize size scale autoscale replicate
        index queue stream denormalize normalize encrypt hash compress throttle retry dedupe buffer precompute poll
        push prioritize tackle postpone table introduce route separate isolate cap set host migrate rewrite refactor
        reuse adopt swap sacrifice optimize assign allocate persist fan reject approve release launch target aim
        combine serve pin freeze trade ignore stick settle land""".split(),
    "adv": """actually just probably definitely rather still also really instead then first honestly personally
        simply only initially""".split(),
    "abandon": "scrap ditch kill forget drop abandon nix shelve skip".split(),
    "plan_noun": """idea approach plan part feature piece thing service suggestion design option proposal change
        version""".split(),
    "uneasy": "comfortable happy convinced keen".split(),
    # "let's <verb>" that is logistics or talk about the interview itself, not a decision
    "lets_logistics": """take get begin see move talk wrap recap continue jump dive look think check pause break
        chat hear say circle come go start step zoom review pick do dig walk discuss head turn switch try get
        assume imagine pretend suppose call""".split(),
    # things a logistics sentence is about
    "logistics": """screen audio mic microphone muted mute camera cursor recording
        water coffee laptop charger window tab zoom whiteboard wifi paste froze recap
        frozen echo dog interview honest nervous myself introduce introduction bathroom restroom slide slides font
        lunch dinner breakfast weather raining vacation weekend invite""".split(),
    "modal_future": "will would".split(),
    # who writes code for the candidate: an AI coding agent (steering it is a steering decision)
    "agent": "agent agents assistant copilot bot ai llm claude cursor codex chatgpt".split(),
    # "we have the agent open": having it, not steering it
    "not_steered": "is was are were open running here there in on at and that which too as".split(),
    # what one does to an agent's output when overriding it (lemmas)
    "override": """revert undo reject override overrule scrap bin discard ditch throw toss rip drop replace redo
        rewrite remove delete stop block refuse veto kill nuke trash delete""".split(),
    # what one makes an agent do (lemmas)
    "instruct": "make have tell ask get force instruct redirect point steer".split(),
    # a past decision, as a demo round defends it (lemmas)
    "past_choice": """drop ditch kill scrap abandon replace swap switch move migrate stop rip pick choose keep stick
        settle decide give cut retire""".split(),
    "reason": "because cause since after when as once".split(),
    # "costs us about a dollar": a figure, not a price weighed against a gain
    "quantity": """about around roughly approximately like maybe nearly almost over under a an one two three four
        five six seven eight nine ten hundred thousand million""".split(),
    "past": """was were had used went did wrote built picked chose decided made tried ran worked lived learned
        said thought saw""".split(),
    "plain": """basically simply imagine like think picture means mean analogy everyday""".split(),
    "flaw": """bug bugs buggy wrong broken breaks break crash crashes race leak leaks overflow off-by-one missing
        miss misses forgot forgets forgetting skips skip stops stale duplicate duplicates deadlock unsafe null
        none empty injection escape escaped unescaped infinite hang hangs fails fail failing edge incorrect
        never twice""".split(),
}


LEXICON["eval"] = sorted(set(LEXICON["eval"]) | set(LEXICON["gain"]) | set(LEXICON["cost"]))


@dataclass(frozen=True, slots=True)
class Cue:
    family: str
    pattern: str
    weight: float
    why: str  # the rationale shown to the interviewer


def _c(family: str, weight: float, why: str, *patterns: str) -> list[Cue]:
    return [Cue(family, p, weight, why) for p in patterns]


FAMILIES: dict[str, list[Cue]] = {
    # ---- requirement gathering
    "clarifying_question": [
        *_c("clarifying_question", MEDIUM, "asks how much / how many", "how @how_q"),
        *_c(
            "clarifying_question",
            WEAK,
            "asks a what/who question",
            "what is the",
            "what are the",
            "what kind",
            "what sort",
            "what type",
            "what happens",
            "what counts",
            "what does _ look like",
            "what should",
            "what would",
            "who is",
            "who are",
            "who will",
            "who would",
            "which of",
            "which one",
            "what is our",
            "what is your",
            "who reads",
            "who uses",
            "what regions",
        ),
        *_c(
            "clarifying_question",
            STRONG,
            "pins down what the interviewer meant",
            "when you say",
            "when you said",
            "by _{1,3} do you mean",
            "what do you mean by",
            "do you mean",
            "you mean like",
        ),
        *_c(
            "clarifying_question",
            MEDIUM,
            "asks to learn more about the problem",
            "tell me more about",
            "i want to understand",
            "i would like to understand",
            "i want to know",
            "i would like to know",
            "i am curious",
            "i am wondering",
            "i was wondering",
            "how do you measure",
            "how do we measure",
            "how will we know",
            "how would we know",
            "how is success",
            "how do we know",
            "help me understand",
            "could you explain",
            "can you explain",
            "can you walk me through",
            "could you walk me through",
            "can you say more about",
            "what is the context",
            "more context on",
            "are we talking",
            "get a sense of",
            "a feel for",
            "ballpark",
        ),
        *_c(
            "clarifying_question",
            MEDIUM,
            "asks what must be handled",
            "which _{1,2} do/does/will/should/must we/they/users/customers/it",
            "do/does/will we/it/they have/need to _? handle/support/serve/store/keep/process/cover/show/allow",
        ),
        *_c(
            "clarifying_question",
            MEDIUM,
            "asks what success looks like",
            "what does success",
            "what would make this a success",
            "what counts as done",
            "success criteria",
            "acceptance criteria",
            "definition of done",
        ),
        *_c(
            "clarifying_question",
            WEAK,
            "asks whether something is needed",
            "do we need",
            "do we have to",
            "does it need",
            "do they need",
            "do users need",
            "does the _ need",
            "should we care",
            "should the",
            "should it",
            "are we building",
            "are we optimizing",
            "are we limited",
            "is there a limit",
            "is there an existing",
            "are there any",
            "do we care",
            "is it one",
            "is it ok if",
            "is it fine",
            "is that ok",
            "is that a",
            "is that an",
            "or is that",
        ),
    ],
    "assumption_check": [
        *_c(
            "assumption_check",
            STRONG,
            "states an assumption to confirm it",
            "~assume _{0,12} @confirm ?",
            "~assume _{0,12} is that @confirm",
            "~assume _{0,14} does that",
            "~assume _{0,12} right",
            "can i assume",
            "could i assume",
            "can we assume",
            "is it safe to assume",
            "is it fine to assume",
            "is it ok to assume",
            "my assumption is",
            "i am thinking _{0,12} is that",
            "take it as given",
            "taking it as given",
            "take as given",
            "does that hold",
            "that hold up",
            "is that a safe assumption",
            "safe assumption",
            "i would guess _{0,8} is that",
            "i am guessing",
            "i would guess",
            "i guess _{0,10} right",
        ),
        *_c(
            "assumption_check",
            MEDIUM,
            "states an assumption",
            "i will assume",
            "i am assuming",
            "assuming that",
            "let us assume",
            "i would assume",
            "i am going to assume",
            "we can assume",
            "take it that",
            "assume for now",
            "i will go with the assumption",
            "working assumption",
            "unless you tell me otherwise",
            "unless you say otherwise",
            "stop me if",
            "i will take it",
            "i am taking it",
            "i am presuming",
            "presumably",
        ),
        *_c("assumption_check", WEAK, "supposes a figure", "let us say", "say we have", "suppose we", "if we say"),
        *_c(
            "assumption_check",
            MEDIUM,
            "checks a figure or fit",
            "does that match",
            "in the right ballpark",
            "does that sound @confirm",
            "sound @confirm ?",
            "is that in the right",
            "does that sound about right",
        ),
    ],
    "restating": [
        *_c(
            "restating",
            STRONG,
            "checks its understanding",
            "correct me if",
            "if i have got this",
            "if i got this",
            "let me see if i",
            "anything i am missing",
            "did i miss anything",
            "am i missing",
            "have i missed",
            "is that the gist",
            "is that the idea",
            "is that fair",
            "is that accurate",
            "is that what you mean",
            "is that what you want",
            "what you had in mind",
            "what you have in mind",
            "sound right",
            "am i understanding",
            "am i reading",
            "check my understanding",
            "my understanding is",
            "check i understand",
            "check that i understand",
            "understand correctly",
            "tell me if i am wrong",
            "is that the goal",
            "is that the main",
        ),
        *_c(
            "restating",
            STRONG,
            "restates the requirements back",
            "just to restate",
            "to restate",
            "restating",
            "to play it back",
            "play it back",
            "play that back",
            "let me make sure i",
            "make sure i understand",
            "make sure i got",
            "if i understand",
            "if i understood",
            "if i heard you right",
            "if i heard that right",
            "did i get that right",
            "did i hear that right",
            "did i get that",
            "so the requirement is",
            "so the requirements are",
            "just to confirm",
            "just so i am clear",
            "so i am clear",
            "to confirm",
            "to summarize",
            "so to summarize",
            "let me summarize",
            "so we are saying",
            "so you are saying",
            "if i am hearing",
            "am i right that",
            "correct ?",
            "is that correct",
            "is that right",
            "so the main constraint",
            "so the must have",
            "the must have is",
            "the must-have is",
            "so the goal is",
            "so the priority is",
            "so the main",
            "so what you need",
            "let me recap the requirements",
        ),
    ],
    # ---- tradeoff articulation
    "gain_cost": [
        *_c(
            "gain_cost",
            STRONG,
            "names the downside / upside",
            "the downside",
            "the upside",
            "downside is",
            "upside is",
            "the down side",
            "the up side",
            "downsides",
            "the nice thing",
            "the nice part",
            "the not so nice",
            "the annoying thing",
            "the annoying part",
            "the appeal of",
            "the catch is",
            "the flip side",
            "the drawback",
            "drawback is",
            "the benefit is",
            "the cost is",
            "the price is",
            "the risk is",
            "the tradeoff is",
            "the trade off is",
            "tradeoff here is",
            "trade off here is",
            "the tradeoff being",
            "trade off being",
            "the tradeoff basically",
            "the trade off basically",
            "tradeoff is basically",
            "trade off is basically",
            "the catch being",
            "the cost being",
            "the price being",
            "the downside being",
            "the upside being",
            "the risk being",
            "at the price of",
            "in exchange",
            "one or the other",
            "either one or",
            "~buy _{1,3} with",
            "choice between",
            "trade _{1,3} against",
        ),
        *_c(
            "gain_cost",
            STRONG,
            "weighs a gain against a cost",
            "at the expense of",
            "at the cost of",
            "in exchange for",
            "comes at the cost",
            "comes at a cost",
            "we pay for it",
            "paying for it",
            "pay for that",
            "pay for it with",
            "the price is",
            "costs us !@quantity",
            "but it costs",
            "but costs",
            "but we lose",
            "but you lose",
            "we would lose",
            "we lose the",
            "lose the ability",
            "the penalty",
            "on the other hand",
            "pros and cons",
            "whereas",
        ),
        *_c(
            "gain_cost",
            STRONG,
            "names the price of a choice",
            "the price we pay",
            "price we pay",
            "the cost we pay",
            "what we give up",
            "we give up",
            "at the risk of",
            "is the cost",
            "are the cost",
            "is the price",
            "not both",
            "not really both",
            "can not have both",
            "can not do both",
            "have both",
            "get both",
            "we trade",
            "trading off",
            "trade _{1,4} for",
            "@eval versus @eval",
            "@eval or @eval",
            "@eval vs @eval",
            "question of _{1,3} versus",
        ),
        *_c(
            "gain_cost",
            0.6,
            "compares cost or size",
            "costs more",
            "cost more",
            "costs less",
            "more expensive",
            "half the price",
            "half the cost",
            "twice as",
            "times more",
            "times the cost",
            "times cheaper",
        ),
        *_c("gain_cost", WEAK, "weighs options", "it depends", "depends on whether", "depends who", "comes down to"),
    ],
    "comparison": [
        *_c(
            "comparison",
            WEAK,
            "compares options",
            "versus",
            "compared to",
            "compared with",
            "@comparative than",
            "either _{1,10} or",
            "instead of _{1,6} we get",
            "rather than _{1,6} we get",
        ),
        *_c(
            "comparison",
            MEDIUM,
            "compares options on a property",
            "@comparative than _{1,6} but",
            "is @comparative than",
            "are @comparative than",
            "is more _ than",
            "much @comparative than",
        ),
    ],
    "contrast": [],  # computed in rules.py: a contrast conjunction with weighing words on both sides
    # ---- steering decision
    "commitment": [
        *_c(
            "commitment",
            STRONG,
            "commits to a choice",
            "let us go with",
            "let us go ahead",
            "let us use",
            "let us stick with",
            "i will go with",
            "i would go with",
            "i am going to go with",
            "going to go with",
            "we will go with",
            "we are going with",
            "i am going with",
            "i would pick",
            "i will pick",
            "i would choose",
            "i will choose",
            "i am choosing",
            "i am picking",
            "my call is",
            "my choice is",
            "the decision is",
            "decision time",
            "final answer",
            "i would rather",
            "i had rather",
            "i would prefer",
            "i would say we",
            "i would suggest we",
            "i would recommend",
            "we should use",
            "we should go",
            "i think we should",
            "i think i will",
            "i think we will",
            "i would keep",
            "we will keep",
            "i would lean",
            "suggest we",
            "i suggest",
            "my suggestion is",
            "i propose",
            "i would propose",
            "my proposal is",
            "i recommend",
            "my recommendation is",
            "the plan is",
            "so the plan",
            "let us build that",
            "first thing i will do",
            "first thing i would do",
            "i will start with",
            "i would start with",
            "we will start with",
            "let us start with",
            "i will begin with",
            "i would begin with",
            "i will handle",
            "i will do _ first",
            "i will put",
            "i would put",
            "we will put",
            "i will use",
            "we will use",
            "we are going to use",
            "we are going to go",
            "i am going to use",
            "we will store",
            "we are just going to",
            "we are going to support",
            "let us make",
            "let us keep",
            "let us put",
            "let us do",
            "let us shard",
            "let us switch",
            "let us build",
            "let us focus",
            "let us skip",
            "let us drop",
            "let us cut",
            "let us add",
            "let us just",
            "let us not",
            "let us split",
            "let us store",
            "let us batch",
            "let us cache",
            "let us buy",
            "let us pick",
            "let us choose",
            "let us treat",
            "let us partition",
            "let us have",
            "my decision is",
            "our decision is",
            "i have decided",
            "i am deciding",
            "i will decide",
            "different route",
            "different path",
            "different tack",
            "go a different way",
            "a different direction",
            "different approach",
            "_ it is .",
            "my plan is",
            "my plan would be",
            "the plan would be",
            "here is the plan",
            "here is what we do",
            "here is what we will do",
            "here is what i would do",
            "here is what i will do",
            "here is what i am going to do",
            "landing on",
            "i will land on",
            "settling on",
            "i will settle on",
            "sticking with",
            "what i would change",
            "i would do differently",
            "let us hold off",
        ),
        *_c(
            "commitment",
            MEDIUM,
            "commits to a direction",
            "i will @decide_verb",
            "i would @decide_verb",
            "we will @decide_verb",
            "we would @decide_verb",
            "i am going to @decide_verb",
            "we are going to @decide_verb",
            "i am ~@decide_now",
            "we are ~@decide_now",
            "we are @adv doing",
            "we are @adv going with",
            "i am @adv going with",
            "we are @adv ~@decide_now",
            "i am @adv ~@decide_now",
            "i would @adv @adv? @decide_verb",
            "i will @adv @adv? @decide_verb",
            "we will @adv @adv? @decide_verb",
            "we would @adv @adv? @decide_verb",
            "make/have/tell/ask the agent",
            "i want the agent",
            "we should",
            "we should not",
            "let us ~@decide_lemma",
        ),
    ],
    "scoping": [
        *_c(
            "scoping",
            STRONG,
            "scopes something out",
            "out of scope",
            "leave _{1,5} out",
            "out of this design",
            "not part of this",
            "not going to handle",
            "not going to support",
            "not going to do",
            "not going to build",
            "not going to worry",
            "let me park",
            "park _{1,3} for now",
            "park that",
            "rabbit hole",
            "say no to",
            "separate system",
            "not in scope",
            "descope",
            "de-scope",
            "scope out",
            "scope it down",
            "cut _{1,4} from",
            "skip _{1,5} for now",
            "for the mvp",
            "for the first release",
            "in v1",
            "for v1",
            "in the first version",
            "come back to it",
            "worry about _{1,3} afterwards",
            "worry about _{1,3} later",
            "handle _{1,4} later",
            "for this round",
            "hold off",
            "let us table",
            "table that",
            "table the",
            "we are not ~@decide_now",
            "we are not doing",
            "i will ignore",
            "we will ignore",
            "ignore _{1,3} for now",
            "phase two",
            "phase 2",
            "v2",
            "version two",
            "next phase",
            "nice to have",
            "leave _{1,4} for later",
            "i do not want to @decide_verb",
            "we do not need to @decide_verb",
            "not going to @decide_verb",
            "@abandon the/that/this _{0,2} @plan_noun",
        ),
        *_c("scoping", MEDIUM, "leaves something for later", "for later"),
        *_c("scoping", WEAK, "defers something", "for now", "later", "first", "afterwards", "to begin with"),
    ],
    "pushback": [
        *_c(
            "pushback",
            STRONG,
            "pushes back on a suggestion",
            "push back",
            "pushback",
            "i disagree",
            "i would disagree",
            "disagree with",
            "i do not agree",
            "i do not think we should",
            "i would not @decide_verb",
            "i would not let",
            "would not allow",
            "i would not do that",
            "we should not",
            "do not merge",
            "not merge that",
            "revert",
            "undo",
            "roll back",
            "rollback",
            "not the approach",
            "not going to accept",
            "not accept",
            "do not let",
            "tell _{1,3} to stop",
            "i would not use",
            "not use _{1,3} here",
            "that is overkill",
            "is overkill",
            "premature",
            "i want to keep",
            "i want the old",
            "i am not @uneasy",
            "i do not like",
            "not comfortable",
            "i would not do that",
            "i would not merge",
            "go back to",
            "no , do not",
            "no do not",
            "no , let us not",
            "no let us not",
            "i would not add",
            "not touch",
            "not happening",
            "a no from me",
            "that is a no",
            "hard no",
            "do not ~run/ship/deploy/apply/push/execute that/this/it",
            "stop the agent",
            "i am not doing that",
            "we are not doing that",
            "argue against",
            "i would resist",
            "i do not love",
            "i would rather not",
            "not for v1",
            "not for version one",
            "not right now",
        ),
    ],
    "course_change": [
        *_c(
            "course_change",
            STRONG,
            "changes course",
            "scratch that",
            "take back",
            "change direction",
            "change course",
            "pivot",
            "on second thought",
            "switch to",
            "switching to",
            "i am switching",
            "let us switch",
            "rather than",
            "instead of",
            "instead",
            "you know what , i",
            "you know what i",
            "actually no",
            "actually , no",
            "no wait",
            "i changed my mind",
            "change my mind",
            "changing my mind",
            "let us flip",
            "flip it",
            "reverse that",
            "change of plan",
            "change of plans",
            "new plan",
            "i take that back",
        ),
    ],
    # ---- builder track
    "plain_language": [
        *_c(
            "plain_language",
            STRONG,
            "explains in plain language",
            "think of it like",
            "think of it as",
            "in plain terms",
            "in plain english",
            "in plain language",
            "in simple terms",
            "put simply",
            "imagine _{1,4} like",
            "it is like a",
            "for you as a",
            "for you as the",
            "for your",
            "what that means for you",
            "this means for you",
            "for you it means",
            "the way to think about it",
            "like a photocopy",
            "analogy",
        ),
    ],
    "flaw_catch": [
        *_c(
            "flaw_catch",
            STRONG,
            "points out a flaw",
            "@flaw",
            "not thread safe",
            "off by one",
            "one short",
            "never gets",
            "will return",
            "can both",
            "there is no check",
            "no filter",
            "there is no",
            "does not handle",
            "does not check",
            "forgot to",
            "edge case",
            "this will break",
            "that will break",
            "this breaks",
            "that breaks",
            "wait , this",
            "wait this",
            "that is wrong",
            "this is wrong",
        ),
    ],
    "defend_past": [
        *_c(
            "defend_past",
            STRONG,
            "defends a past decision",
            "~pick/choose/decide/go _{0,8} because",
            "we picked",
            "i picked",
            "i chose",
            "we chose",
            "i decided",
            "we decided",
            "back then",
            "at the time",
            "i would make the same call",
            "same call today",
            "the reason i",
            "the reason we",
            "reason was",
            "i went with",
            "we went with",
        ),
    ],
}

# Steering an AI coding agent: making it do something, or overriding what it produced.
FAMILIES["agent_steer"] = [
    *_c(
        "agent_steer",
        STRONG,
        "steers the AI agent",
        "~tell/ask/instruct/force/redirect the? @agent",
        "~make/have/get the? @agent !@not_steered",
        "~@override _{0,2} the? @agent",
        "~@override _{0,2} the? generated",
        "~throw/rip/toss away/out the? @agent",
        "~throw/rip/toss away/out the? generated",
        "~stop the @agent",
    ),
    *_c(
        "agent_steer",
        MEDIUM,
        "overrides what it produced",
        "~tell/ask/instruct/force/redirect it to",
        "~have/make it ~@decide_lemma",
        "~have/make it ~write/redo/rewrite/fix",
        "~@override _{0,2} its",
        "i said no",
        "i ~stop it",
        "~overrule/override it",
    ),
]
# A past decision defended in a demo round: "dropped the hosted auth after a month because ...".
FAMILIES["past_decision"] = [
    *_c(
        "past_decision",
        MEDIUM,
        "defends a past decision",
        "we/i ~@past_choice _{0,8} @reason",
        "we/i went back to",
        "we/i ~go with _{1,6} @reason",
        "~@past_choice _{1,4} off",
        "we/i ~move _{1,4} off",
        "~rip _{1,4} out",
        "never looked back",
    ),
]
# A decision stated as an outcome ("the admin screen stays server-rendered", "so the answer is a cron job"):
# literal markers here, the weaker ones (a negated alternative, "never", "and that is it") in rules.py.
FAMILIES["outcome"] = [
    *_c(
        "outcome",
        MEDIUM,
        "states the decision as an outcome",
        "the answer is",
        "my answer is",
        "so the answer",
        "the answer for",
        "and that is it",
        "nothing else",
        "the whole pipeline",
    ),
    *_c("outcome", 0.6, "states how it will be", "~stay/remain", "first ,? then", "for now", "to start"),
]
OUTCOME_NEGATION = frozenset("not never no".split())
# After "not"/"no": a rejected alternative ("on the server, not on the phone"; "no rich text").
ALTERNATIVE_AFTER = frozenset(
    """the a an per in on at from to by before after each every one two any with via through inside outside
    separate live rich smart extra custom second new other shared global""".split()
)
# The other side's turn proposes something (so "no" or "not yet" in reply turns it down).
PROPOSAL = [
    "what if",
    "should we",
    "could we",
    "can we",
    "we should",
    "we could",
    "how about",
    "why not",
    "let us",
    "i suggest",
    "proposed",
    "suggested",
    "proposes",
    "suggests",
    "wants to",
    "want to",
    "we need",
    "needs a",
    "ready to merge",
    "ready to apply",
    "shall i",
    "i have added",
    "i have replaced",
    "i have removed",
    "i have simplified",
    "i have cached",
    "i have rewritten",
    "i have moved",
    "i added",
    "i replaced",
    "i removed",
    "i simplified",
    "i cached",
    "i rewrote",
    "i moved",
    "do you want to",
    "would you",
    "i think we should",
    "the pm wants",
    "teammate",
    "colleague",
]
# A reply that turns a proposal down (its first words, after discourse markers).
TURN_DOWN = [
    "no",
    "nah",
    "nope",
    "not",
    "i would rather not",
    "i do not think so",
    "i do not love",
    "i would not",
    "i would resist",
    "i would argue against",
    "that is a no",
    "i am not",
    "we are not",
    "never",
]

# Families whose cues do not count inside a question sentence ("can i use a whiteboard instead?").
QUESTION_WEAKENS = frozenset({"commitment", "course_change", "scoping", "outcome", "agent_steer", "past_decision"})
# Consequence words that open the clause a decision sits in ("..., so we use X"; "if so, then ...").
CONSEQUENCE_OPEN = frozenset("so then therefore hence thus until".split())
NOT_A_CLAUSE_AFTER_SO = frozenset("that far much many long few little called to".split())

# ---------------------------------------------------------------- decision defaults
# The per-tag thresholds are tuned by cross-validation when the classifier is trained
# (`textcat.tune_thresholds`); these apply without a classifier, and bound the tuning.
MIN_WORDS_CLASSIFIER_ALONE = 4
# The classifier alone, for a tag with no cue, while a requirement cue explains the utterance: a
# restated requirement or an assumption is declarative like an outcome decision, so the bar is higher.
P_BESIDE_OTHER_CUE = 0.7  # "okay okay", "but I digress": too little text for the classifier alone
DEFAULT_RULE_ALONE = MEDIUM - 0.01  # rules alone: MEDIUM and STRONG cues fire

# ---------------------------------------------------------------- words of the context checks
# The rules tagger's vetoes and question/contrast passes read these (clean words: lowercase,
# contractions expanded, see normalize.py).

DISCOURSE = frozenset(
    """so and ok um uh right well also then yeah hmm oh sorry wait but hey now just actually cool great roughly
    approximately okay""".split()
)
AGREE = frozenset(
    """yeah yes yep sure ok sounds good let us do that it your way fine great cool go for right then totally makes
    sense agree with i to me that is works perfect alright awesome absolutely definitely lets sounds the plan
    we can can""".split()
)
FUTURE = frozenset("will would going let should want need not must".split())
# Questions that do not gather requirements (permission, logistics, checking in).
RG_VETO = [
    "should i",
    "can i use",
    "could i use",
    "do you want me",
    "would you like me",
    "do you mind",
    "mind if i",
    "ok if i",
    "could you repeat",
    "can you repeat",
    "did that answer",
    "answer your question",
    "make sense",
    "keep going",
    "looking for",
    "time do we have",
    "time left",
    "how long is this",
    "can you hear",
    "can you see",
    "time limit",
    "this section",
    "this part of the interview",
    "where were we",
    "where was i",
    "what was the name",
    "can everyone",
    "you cut out",
    "could you paste",
    "can you paste",
    "was i",
    "do you need me",
    "where did i",
    "one sec",
    "one second",
    "what you think",
    "how i did",
    "how i am doing",
    "are you in",
    "are you based",
    "where are you",
    "by the way",
]
# A proposal about the interview itself ("can we take a short break?") is not one to turn down.
BREAKS = frozenset("break pause wrap".split())
# The interviewer's "any questions for us?": what follows gathers nothing.
ANY_QUESTIONS = [
    "any questions",
    "anything you would like to ask",
    "anything you want to ask",
    "questions for us",
    "questions for me",
    "anything to ask",
    "questions before we",
]
# "let's" about the interview itself, not the design.
LOGISTIC_LETS = [
    "let us take",
    "let us get started",
    "let us see",
    "let us move on",
    "let us begin",
    "let us talk",
    "let us wrap",
    "let us get going",
    "let us pick this up",
    "let us pick it up",
    "let us pick up",
    "show you",
    "walk you through",
    "talk you through",
    "let me show",
    "pull up",
    "i will show",
    "after lunch",
    "next question",
    "waste your time",
    "let us go over",
    "let us go through",
    "let us run it",
    "let us run this",
    "let us try it",
    "see what happens",
    "see if it",
]
LOGISTICS = frozenset(LEXICON["logistics"])
AGENT = frozenset("i we us".split())
PRONOUN = frozenset("i we you they he she it people".split())
CONSEQUENCE = frozenset("would might could will need needs means mean have has lose get".split())
PAST = frozenset(LEXICON["past"])

# Question form (speech has no question marks).
WH = frozenset(LEXICON["wh"])
AUX = frozenset(LEXICON["aux"])
SUBJ = frozenset(LEXICON["subj"])
ASKING = frozenset("question questions wondering wonder curious ask asking".split())
WONDER = frozenset("wondering wonder curious".split())
THIS_IS = frozenset("here this that it".split())  # "here is what we do" announces, it does not ask
INDIRECT = WH | frozenset("whether if about".split())
NOT_LIKE = frozenset("not i you we they would do did".split())
INV_AUX = frozenset("are is do does will can should would could".split())
INV_SUBJ = frozenset("we you they users it".split())
NO_INV_BEFORE = (
    frozenset(
        """i we you they it that this there he she which what who how where when why so and if than whether as
    what is not""".split()
    )
    | INV_AUX
)

_LEX_SETS: dict[str, frozenset[str]] = {}


def lex_set(name: str) -> frozenset[str]:
    """A lexicon as a frozenset, built once."""
    s = _LEX_SETS.get(name)
    if s is None:
        s = _LEX_SETS[name] = frozenset(LEXICON[name])
    return s
