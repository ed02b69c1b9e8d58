"""What the command line prints: rich tables and views for people, JSON documents for programs.

Pure rendering: values in, renderables or dicts out; it reads no store and starts nothing.
May import: ``planner.core``, the drivers' value types and ``registry``'s domain modules.
"""
