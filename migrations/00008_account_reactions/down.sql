DROP TABLE account_reactions;
