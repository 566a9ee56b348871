"""The prompts of the traffic phases (bench/traffic.py): every one starts with a unique nonce, so no engine reuses a
cached prefix, and the same index gives the same task on every target."""

from __future__ import annotations

import uuid

QUESTIONS = [
    "What is the difference between a list and a tuple in Python?",
    "Explain what a hash map is and when to use one.",
    "How does binary search work? Give its complexity.",
    "What does the `yield` keyword do in Python?",
    "Why are database indexes useful, and what do they cost?",
    "What is a race condition? Give a short example.",
    "Explain recursion to a new programmer.",
    "What is the purpose of a unit test?",
]

# Tasks that make a 0.5B coder write at length: a module with several functions and docstrings.
LONG_TASKS = [
    "a Python module for a small library catalogue: classes for books and members, borrowing and returning, "
    "overdue fines, and a search by title or author",
    "a Python module that parses, validates and pretty-prints INI-style configuration files, with error messages "
    "that name the line",
    "a Python command-line to-do list: add, list, complete and delete tasks, stored in a JSON file",
    "a Python module implementing a priority task scheduler with retries, timeouts and a simple report",
]

# Functions to be given back whole with one small change: most of the answer repeats the prompt.
FUNCTIONS = [
    '''def summarize_orders(orders, currency="EUR"):
    """Totals, counts and the largest order per customer."""
    totals = {}
    counts = {}
    largest = {}
    for order in orders:
        customer = order["customer"]
        amount = order["amount"]
        if order.get("currency", currency) != currency:
            raise ValueError(f"order {order['id']} is not in {currency}")
        totals[customer] = totals.get(customer, 0) + amount
        counts[customer] = counts.get(customer, 0) + 1
        if customer not in largest or amount > largest[customer]["amount"]:
            largest[customer] = order
    report = []
    for customer in sorted(totals):
        report.append(
            {
                "customer": customer,
                "total": round(totals[customer], 2),
                "orders": counts[customer],
                "largest": largest[customer]["id"],
            }
        )
    return report
''',
    '''def parse_log_line(line):
    """One access-log line as a dict, or None when it is not one."""
    parts = line.strip().split(" ")
    if len(parts) < 7:
        return None
    address, _, user, day, zone, method, path = parts[:7]
    status = parts[8] if len(parts) > 8 else "-"
    size = parts[9] if len(parts) > 9 else "-"
    if not day.startswith("[") or not zone.endswith("]"):
        return None
    record = {
        "address": address,
        "user": None if user == "-" else user,
        "time": day[1:] + " " + zone[:-1],
        "method": method.strip('"'),
        "path": path,
        "status": int(status) if status.isdigit() else None,
        "size": int(size) if size.isdigit() else 0,
    }
    if record["method"] not in ("GET", "POST", "PUT", "DELETE", "HEAD"):
        return None
    return record
''',
]
EDITS = [
    "Rename the function's first parameter to `items` everywhere it is used.",
    "Add type hints to the signature; change nothing else.",
    "Make it skip entries whose amount or size is negative, with a comment saying why.",
    "Replace the double quotes of every string literal with single quotes.",
]


def nonce() -> str:
    return f"[{uuid.uuid4().hex[:8]}]"


def question(index: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{nonce()} {QUESTIONS[index % len(QUESTIONS)]}"}]


def long_answer(index: int) -> list[dict[str, str]]:
    task = LONG_TASKS[index % len(LONG_TASKS)]
    content = f"{nonce()} Write {task}. Include docstrings, comments and a short usage example at the end."
    return [{"role": "user", "content": content}]


def code_edit(index: int) -> list[dict[str, str]]:
    function = FUNCTIONS[index % len(FUNCTIONS)]
    edit = EDITS[index % len(EDITS)]
    content = (
        f"{nonce()} {edit} Reply with the whole function only, in one Python code block.\n\n```python\n{function}```"
    )
    return [{"role": "user", "content": content}]
