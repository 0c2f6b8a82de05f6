DROP TABLE account_merge;
