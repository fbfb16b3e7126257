from .flows import PypiTeamFlow
