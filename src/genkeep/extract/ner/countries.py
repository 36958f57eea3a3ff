"""Country names, so a place the model finds can be told a country rather than a city.

The model says GPE for both; an ontology with a Country class beside a City class needs to
know which. Common English short names of the UN member states and a few others.
"""

COUNTRIES = frozenset(
    name.replace("_", " ")
    for name in """
    Afghanistan Albania Algeria Andorra Angola Argentina Armenia Australia Austria Azerbaijan
    Bahamas Bahrain Bangladesh Barbados Belarus Belgium Belize Benin Bhutan Bolivia Bosnia
    Botswana Brazil Brunei Bulgaria Burkina_Faso Burundi Cambodia Cameroon Canada Chad Chile
    China Colombia Comoros Congo Costa_Rica Croatia Cuba Cyprus Czechia Czech_Republic Denmark
    Djibouti Dominica Dominican_Republic Ecuador Egypt El_Salvador England Eritrea Estonia
    Eswatini Ethiopia Fiji Finland France Gabon Gambia Georgia Germany Ghana Greece Grenada
    Guatemala Guinea Guyana Haiti Honduras Hungary Iceland India Indonesia Iran Iraq Ireland
    Israel Italy Jamaica Japan Jordan Kazakhstan Kenya Kiribati Kosovo Kuwait Kyrgyzstan Laos
    Latvia Lebanon Lesotho Liberia Libya Liechtenstein Lithuania Luxembourg Madagascar Malawi
    Malaysia Maldives Mali Malta Mauritania Mauritius Mexico Moldova Monaco Mongolia Montenegro
    Morocco Mozambique Myanmar Namibia Nauru Nepal Netherlands New_Zealand Nicaragua Niger
    Nigeria North_Korea North_Macedonia Norway Oman Pakistan Palau Palestine Panama
    Papua_New_Guinea Paraguay Peru Philippines Poland Portugal Qatar Romania Russia Rwanda
    Samoa San_Marino Saudi_Arabia Scotland Senegal Serbia Seychelles Sierra_Leone Singapore
    Slovakia Slovenia Somalia South_Africa South_Korea South_Sudan Spain Sri_Lanka Sudan
    Suriname Sweden Switzerland Syria Taiwan Tajikistan Tanzania Thailand Togo Tonga Tunisia
    Turkey Turkmenistan Tuvalu Uganda Ukraine United_Arab_Emirates United_Kingdom United_States
    Uruguay USA UK Uzbekistan Vanuatu Vatican Venezuela Vietnam Wales Yemen Zambia Zimbabwe
""".split()
)
